import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The log's read order is (transaction_id, position) — the only gap-safe order, see EventStore.readAll.
 * Two things let a writer break it, and this trigger closes both in the database, for every role
 * (ENABLE ALWAYS), whatever the code that inserts:
 *
 * 1. Per-stream order. A transaction keeps the id it got at its first write. A unit of work that got
 *    its id early and then appended version n+1 of a stream whose version n was written by a
 *    YOUNGER transaction would sort n+1 before n (seen: an idempotent request retried under a
 *    savepoint). So an event must follow its stream's previous version, written by this transaction
 *    or an older one; otherwise SQLSTATE LE001 (the store restarts the whole unit of work on a
 *    fresh, younger transaction). Then transaction ids never decrease along a stream's versions, and
 *    within one transaction positions grow with them: every reader of the log sees each stream in
 *    version order. A version that follows no existing version is SQLSTATE LE002 (never sent by the
 *    store, which computes versions; only a hand-written INSERT could).
 * 2. Columns the database owns. position, transaction_id and recorded_at are set here whatever the
 *    inserting role sends (OVERRIDING SYSTEM VALUE, an explicit transaction id or a backdated
 *    instant): an event hidden below every projection's checkpoint, or backdated for time travel, is
 *    impossible. position stops being an identity column (whose OVERRIDING SYSTEM VALUE any inserter
 *    may use) and is drawn by this trigger alone from a sequence of its own, continuing where the
 *    identity stopped: one value per event, as before (a position with no event would make a
 *    read-your-writes wait for an event that never comes). Inserting roles need USAGE on it.
 * The ALTER takes an ACCESS EXCLUSIVE lock: appends of a running instance wait for the migration.
 */
export class GuardEventInserts1764230400012 implements MigrationInterface {
  name = 'GuardEventInserts1764230400012';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`LOCK TABLE events IN ACCESS EXCLUSIVE MODE`);
    await queryRunner.query(`ALTER TABLE events ALTER COLUMN position DROP IDENTITY`);
    await queryRunner.query(`CREATE SEQUENCE events_position_seq AS bigint OWNED BY events.position`);
    await queryRunner.query(`SELECT setval('events_position_seq', coalesce((SELECT max(position) FROM events), 0) + 1, false)`);
    await queryRunner.query(`
      DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ledger_command') THEN
          GRANT USAGE ON SEQUENCE events_position_seq TO ledger_command;
        END IF;
      END $$`);
    // Every name in the function is schema-qualified (relations resolved now, types and functions in
    // pg_catalog): it must not depend on the search_path of whoever inserts. Qualifying matters for
    // types too: a session's temporary schema is searched for type names BEFORE pg_catalog, so an
    // unqualified xid8 or regclass could be a type that session created (seen in review). Cheaper
    // than a SET search_path clause, which would cost a configuration change on every row.
    const [{ sequence, events }] = (await queryRunner.query(
      `SELECT format('%I.events_position_seq', current_schema()) AS sequence, format('%I.events', current_schema()) AS events`,
    )) as Array<{ sequence: string; events: string }>;
    await queryRunner.query(`
      CREATE FUNCTION events_guard_insert() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        previous pg_catalog.xid8;
      BEGIN
        NEW.position := pg_catalog.nextval(${quoteLiteral(sequence)}::pg_catalog.regclass);
        NEW.transaction_id := pg_catalog.pg_current_xact_id();
        NEW.recorded_at := pg_catalog.clock_timestamp();
        IF NEW.version > 1 THEN
          SELECT transaction_id INTO previous FROM ${events} WHERE stream_id = NEW.stream_id AND version = NEW.version - 1;
          IF NOT FOUND THEN
            RAISE EXCEPTION 'stream "%" has no version % for version % to follow', NEW.stream_id, NEW.version - 1, NEW.version
              USING ERRCODE = 'LE002';
          END IF;
          IF previous > NEW.transaction_id THEN
            RAISE EXCEPTION 'stream "%" version % was written by a younger transaction than the one appending version %',
                NEW.stream_id, NEW.version - 1, NEW.version
              USING ERRCODE = 'LE001',
                    HINT = 'Append again from a new transaction: the log lists each stream in version order.';
          END IF;
        END IF;
        RETURN NEW;
      END
      $$`);
    await queryRunner.query(`
      CREATE TRIGGER events_guard_insert BEFORE INSERT ON events
      FOR EACH ROW EXECUTE FUNCTION events_guard_insert()`);
    await queryRunner.query(`ALTER TABLE events ENABLE ALWAYS TRIGGER events_guard_insert`);
    // A second line of defence: readers turn positions into JavaScript numbers, and a position past
    // 2^53 would make every read of the log fail, for good (events are never deleted).
    await queryRunner.query(
      `ALTER TABLE events ADD CONSTRAINT events_position_safe_integer CHECK (position BETWEEN 1 AND 9007199254740991)`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE events DROP CONSTRAINT events_position_safe_integer`);
    await queryRunner.query(`DROP TRIGGER events_guard_insert ON events`);
    await queryRunner.query(`DROP FUNCTION events_guard_insert()`);
    const [{ next }] = (await queryRunner.query(`SELECT coalesce(max(position), 0) + 1 AS next FROM events`)) as Array<{ next: string }>;
    await queryRunner.query(`DROP SEQUENCE events_position_seq`);
    await queryRunner.query(`ALTER TABLE events ALTER COLUMN position ADD GENERATED ALWAYS AS IDENTITY (START WITH ${Number(next)})`);
  }
}

function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}
