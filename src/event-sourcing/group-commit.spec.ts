import { describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { QueryFailedError } from 'typeorm';
import { refusedByDatabase } from './group-commit.js';

// Whether a failed group statement was refused (rolled back: its appends may be written again one by
// one) or has an unknown outcome (never written again). The server words the severity in its
// lc_messages language: a cluster initialised under a German locale answers "FEHLER", not "ERROR"
// (seen on PostgreSQL 15 with lc_messages=de_DE.UTF-8: every group with one race failed as a whole,
// and test/group-commit.int-spec.ts failed 4 of 14 against it).

function databaseError(severity: string, code: string): QueryFailedError {
  const error = new pg.DatabaseError('message', 0, 'error');
  error.severity = severity;
  error.code = code;
  return new QueryFailedError('SELECT 1', [], error);
}

describe('refusedByDatabase', () => {
  it.each([
    ['ERROR', '23505'],
    ['FEHLER', '23505'], // unique violation (a version or an event id taken), German
    ['ERREUR', '40P01'], // deadlock, French
    ['ОШИБКА', '23514'], // check violation, Russian
    ['FEHLER', 'LE001'], // the ledger's own trigger
    ['FEHLER', '57014'], // statement cancelled
    ['FEHLER', '54000'], // program limit
  ])('%s %s: refused, whatever the language', (severity, code) => {
    expect(refusedByDatabase(databaseError(severity, code))).toBe(true);
  });

  it.each([
    ['FATAL', '57P01'], // terminated: may have committed
    ['PANIC', '53100'], // a failed WAL write: may have committed
    ['PANIK', '53100'],
    ['FATAL', '23505'], // whatever the code, a FATAL ends the session
    ['FEHLER', 'XX000'], // internal error: not known to be a statement's refusal
    ['FEHLER', '58030'],
  ])('%s %s: outcome unknown', (severity, code) => {
    expect(refusedByDatabase(databaseError(severity, code))).toBe(false);
  });

  it('a lost connection (no server answer) is not a refusal', () => {
    expect(refusedByDatabase(new Error('Connection terminated unexpectedly'))).toBe(false);
  });
});
