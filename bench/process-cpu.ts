// CPU time of a process from /proc/<pid>/stat (utime + stime, every thread of it): the HTTP
// benchmark's CPU per request is the delta over a measured window divided by its requests.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

const TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU seconds (user + system) the process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]); // field 14
  const stime = Number(fields[12]); // field 15
  return (utime + stime) / TICKS_PER_SECOND;
}

export const cpuTickSeconds = 1 / TICKS_PER_SECOND;

/**
 * CPU seconds used so far by a PostgreSQL server: its postmaster and every process it started
 * (backends, WAL writer, checkpointer, autovacuum) that is still running. A backend that exited
 * takes its time with it, so measure across a window in which the pool's connections stay open.
 */
export function clusterCpuSeconds(postmasterPid: number): number {
  let total = cpuSeconds(postmasterPid);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]); // field 4
      if (parent === postmasterPid) total += cpuSeconds(Number(entry));
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return total;
}
