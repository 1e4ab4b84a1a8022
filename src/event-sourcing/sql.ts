import type { EntityManager } from 'typeorm';

export interface SqlResult<Row> {
  readonly rows: Row[];
  readonly rowCount: number;
}

/**
 * Runs one statement through TypeORM's query runner and always answers { rows, rowCount }
 * (EntityManager.query answers [rows, count] for UPDATE/DELETE and rows otherwise). Inside a
 * transaction the transaction's connection is used; otherwise one is borrowed from the pool.
 */
export async function sql<Row = Record<string, unknown>>(
  manager: EntityManager,
  text: string,
  parameters: readonly unknown[] = [],
): Promise<SqlResult<Row>> {
  const runner = manager.queryRunner ?? manager.connection.createQueryRunner();
  try {
    const result = await runner.query(text, [...parameters], true);
    return { rows: (result.records ?? []) as Row[], rowCount: result.affected ?? result.records?.length ?? 0 };
  } finally {
    if (!manager.queryRunner) await runner.release();
  }
}
