import { Inject, type Provider } from '@nestjs/common';
import type { DataSource, EntityTarget, ObjectLiteral } from 'typeorm';
import { QUERY_DATA_SOURCE } from '../event-sourcing/index.js';

type Entity = EntityTarget<ObjectLiteral> & { name: string };

const tokenOf = (entity: Entity) => `QueryRepository<${entity.name}>`;

/**
 * A read table's repository on the query side's connection (QUERY_DATA_SOURCE): list it among a
 * feature module's providers, inject it into query handlers with InjectQueryRepository.
 */
export function queryRepository(entity: Entity): Provider {
  return {
    provide: tokenOf(entity),
    inject: [QUERY_DATA_SOURCE],
    useFactory: (dataSource: DataSource) => dataSource.getRepository(entity),
  };
}

export const InjectQueryRepository = (entity: Entity) => Inject(tokenOf(entity));
