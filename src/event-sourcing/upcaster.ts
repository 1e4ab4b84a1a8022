/**
 * Turns the stored payload of `type` at schema version `fromVersion` into the payload of version
 * `fromVersion + 1`. Pure; chained until the class's current schema version.
 */
export interface Upcaster {
  readonly type: string;
  readonly fromVersion: number;
  upcast(data: Record<string, unknown>): Record<string, unknown>;
}
