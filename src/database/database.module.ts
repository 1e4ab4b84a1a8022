import { type DynamicModule, Global, Module, type OnApplicationShutdown } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { PROJECTOR_DATA_SOURCE, QUERY_DATA_SOURCE } from '../event-sourcing/index.js';
import { type ConnectionTimeouts, dataSourceOptions } from './data-source-options.js';
import { PendingMigrationsError, pendingMigrations, runMigrations } from './run-migrations.js';
import { DEFAULT_SCHEMA } from './schema-name.js';

/** Where each side connects; a side without a URL of its own uses `main`. */
export interface DatabaseUrls {
  /** The owner's connection: migrations run here. */
  readonly main: string;
  readonly command?: string;
  readonly query?: string;
  readonly projector?: string;
}

export interface DatabaseModuleOptions {
  /** false: migrations are not applied at start, and a database missing any refuses the start. Default true. */
  readonly migrationsRun?: boolean;
  /** statement and idle-in-transaction timeouts of every pooled connection (none when absent). */
  readonly timeouts?: ConnectionTimeouts;
}

/** Closes the pools opened for sides with URLs of their own (TypeORM closes the default one). */
class SideDataSources implements OnApplicationShutdown {
  constructor(
    private readonly commandSide: DataSource,
    private readonly querySide: DataSource,
    private readonly projectorSide: DataSource,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    const own = new Set([this.querySide, this.projectorSide].filter((side) => side !== this.commandSide));
    await Promise.all([...own].filter((side) => side.isInitialized).map((side) => side.destroy()));
  }
}

/**
 * TypeORM on the given PostgreSQL, with every pending migration applied (as the main URL's user)
 * before anything uses it. The default DataSource is the command side; QUERY_DATA_SOURCE and
 * PROJECTOR_DATA_SOURCE are the same DataSource unless their side has a URL of its own.
 */
@Global()
@Module({})
export class DatabaseModule {
  /** `schema`: where the tables are; every connection (the owner's too) has its search_path pinned to it. */
  static forRoot(
    urls: string | DatabaseUrls,
    poolSize: number,
    schema = DEFAULT_SCHEMA,
    options: DatabaseModuleOptions = {},
  ): DynamicModule {
    const { migrationsRun = true, timeouts } = options;
    const { main, ...sides } = typeof urls === 'string' ? { main: urls } : urls;
    const commandUrl = sides.command ?? main;
    const opened = new Map<string, Promise<DataSource>>();
    const sideDataSource = (url: string, commandSide: DataSource): Promise<DataSource> => {
      if (url === commandUrl) return Promise.resolve(commandSide);
      if (!opened.has(url)) {
        // The same entities as the command side (registered there by the feature modules).
        const entities = commandSide.entityMetadatas.map((metadata) => metadata.target);
        opened.set(url, new DataSource({ ...dataSourceOptions(url, poolSize, schema, timeouts), entities }).initialize());
      }
      return opened.get(url)!;
    };
    return {
      module: DatabaseModule,
      imports: [
        TypeOrmModule.forRootAsync({
          useFactory: () => ({
            ...dataSourceOptions(commandUrl, poolSize, schema, timeouts),
            autoLoadEntities: true,
            // Waiting would not apply the missing migrations: refuse at once.
            toRetry: (error: unknown) => !(error instanceof PendingMigrationsError),
          }),
          dataSourceFactory: async (options) => {
            // On a connection of their own (as the owner), so that the service's pools may be of any
            // size, even 1: the migration lock holds one connection while the migrations use another.
            if (migrationsRun) await migrateAsOwner(main, schema);
            else await assertMigrated(main, schema);
            return new DataSource(options!).initialize();
          },
        }),
      ],
      providers: [
        {
          provide: QUERY_DATA_SOURCE,
          inject: [DataSource],
          useFactory: (command: DataSource) => sideDataSource(sides.query ?? main, command),
        },
        {
          provide: PROJECTOR_DATA_SOURCE,
          inject: [DataSource],
          useFactory: (command: DataSource) => sideDataSource(sides.projector ?? main, command),
        },
        {
          provide: SideDataSources,
          inject: [DataSource, QUERY_DATA_SOURCE, PROJECTOR_DATA_SOURCE],
          useFactory: (command: DataSource, query: DataSource, projector: DataSource) => new SideDataSources(command, query, projector),
        },
      ],
      exports: [QUERY_DATA_SOURCE, PROJECTOR_DATA_SOURCE],
    };
  }
}

async function migrateAsOwner(url: string, schema: string): Promise<void> {
  // Two connections: the migration lock holds one while the migrations run on the other.
  const owner = await new DataSource(dataSourceOptions(url, 2, schema)).initialize();
  try {
    await runMigrations(owner, schema);
  } finally {
    if (owner.isInitialized) await owner.destroy();
  }
}

/** MIGRATIONS_RUN=false: a database this build would misread (never migrated, or behind) is refused. */
async function assertMigrated(url: string, schema: string): Promise<void> {
  const reader = await new DataSource(dataSourceOptions(url, 1, schema)).initialize();
  try {
    const pending = await pendingMigrations(reader);
    if (pending.length > 0) throw new PendingMigrationsError(pending);
  } finally {
    if (reader.isInitialized) await reader.destroy();
  }
}
