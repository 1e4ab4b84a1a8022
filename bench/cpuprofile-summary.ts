// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time per function and per package.
//   node dist/bench/cpuprofile-summary.js <file.cpuprofile> [top=25]
import { readFileSync } from 'node:fs';
import { isMain } from './bench-database.js';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  readonly children?: number[];
}
interface CpuProfile {
  readonly nodes: ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: number[];
  readonly timeDeltas: number[];
}

export interface ProfileEntry {
  readonly name: string;
  readonly where: string;
  readonly selfMs: number;
  readonly selfPercent: number;
}
export interface ProfileSummary {
  readonly totalMs: number;
  /** Time not idle: what the process actually computed. */
  readonly busyMs: number;
  readonly functions: ProfileEntry[];
  /** Self time by package (node_modules/<name>), the project's own code, Node's modules, GC… (native code counts for its caller). */
  readonly packages: ProfileEntry[];
  /**
   * The project's own functions (src/) by total time: their self time plus that of everything they
   * called synchronously (an async function counts for its synchronous stretches only).
   */
  readonly projectTotals: ProfileEntry[];
}

/** Where a function lives, as short as it stays recognisable. */
function location(url: string, line: number): string {
  if (!url) return '';
  const path = url.replace(/^file:\/\//, '');
  const inModules = path.lastIndexOf('/node_modules/');
  if (inModules >= 0) return `${path.slice(inModules + '/node_modules/'.length)}:${line + 1}`;
  const inDist = path.indexOf('/dist/');
  if (inDist >= 0) return `${path.slice(inDist + '/dist/'.length)}:${line + 1}`;
  return `${path}:${line + 1}`;
}

/**
 * Who a sample's time belongs to: the package (node_modules/<name>), the project (src/, bench/) or
 * the Node module (node:http, node:crypto…) of the function, or for a native function without a
 * script (a V8 builtin, a syscall wrapper such as writev) that of its nearest JavaScript caller.
 */
function packageOf(id: number, byId: ReadonlyMap<number, ProfileNode>, parent: ReadonlyMap<number, number>): string {
  const own = byId.get(id)!.callFrame.functionName;
  if (['(garbage collector)', '(program)', '(idle)', '(root)'].includes(own)) return own;
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const { url } = byId.get(at)!.callFrame;
    if (!url) continue;
    if (url.startsWith('node:')) {
      const module = url
        .slice('node:'.length)
        .replace(/^internal\//, '')
        .split('/')[0]
        .replace(/^_/, '')
        .split('_')[0];
      return `node:${module === 'streams' ? 'stream' : module}`;
    }
    const path = url.replace(/^file:\/\//, '');
    const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path.slice(path.lastIndexOf('/node_modules/')));
    if (match) return match[1];
    if (path.includes('/dist/src/')) return 'project: src/';
    if (path.includes('/dist/bench/')) return 'project: bench/';
    return path;
  }
  return '(native, no JavaScript caller)';
}

/**
 * Microseconds of the monotonic clock, the clock of a profile's startTime and samples (the same for
 * every process of the machine): pass two of them as a window to summarise only that stretch.
 */
export const monotonicMicros = (): number => Number(process.hrtime.bigint() / 1000n);

export interface ProfileWindow {
  readonly fromUs: number;
  readonly toUs: number;
}

export function summariseProfile(profile: CpuProfile, top = 25, window?: ProfileWindow): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const self = new Map<number, number>();
  let at = profile.startTime;
  for (let index = 0; index < profile.samples.length; index++) {
    // A sample's time delta is the time since the previous one: attributed to this sample's function.
    const delta = profile.timeDeltas[index] ?? 0;
    at += delta;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    self.set(profile.samples[index], (self.get(profile.samples[index]) ?? 0) + delta);
  }
  const totalUs = [...self.values()].reduce((sum, value) => sum + value, 0);
  const functions = new Map<string, { name: string; where: string; us: number }>();
  const packages = new Map<string, number>();
  let idleUs = 0;
  for (const [id, us] of self) {
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') idleUs += us;
    const name = functionName || '(anonymous)';
    const where = location(url, lineNumber);
    const key = `${name} ${where}`;
    const entry = functions.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    functions.set(key, entry);
    const pkg = packageOf(id, byId, parent);
    packages.set(pkg, (packages.get(pkg) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  // Total time of the project's functions: each sample counts once for every distinct src/ function on its stack.
  const totals = new Map<string, { name: string; where: string; us: number }>();
  for (const [id, us] of self) {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const { functionName, url, lineNumber } = byId.get(at)!.callFrame;
      if (!url.includes('/dist/src/')) continue;
      const name = functionName || '(anonymous)';
      const where = location(url, lineNumber);
      const key = `${name} ${where}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const entry = totals.get(key) ?? { name, where, us: 0 };
      entry.us += us;
      totals.set(key, entry);
    }
  }
  const entry = (name: string, where: string, us: number): ProfileEntry => ({
    name,
    where,
    selfMs: Math.round(us / 1000),
    selfPercent: Math.round((1000 * us) / busyUs) / 10,
  });
  return {
    totalMs: Math.round(totalUs / 1000),
    busyMs: Math.round(busyUs / 1000),
    functions: [...functions.values()]
      .filter((f) => f.name !== '(idle)')
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => entry(f.name, f.where, f.us)),
    packages: [...packages.entries()]
      .filter(([name]) => name !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => entry(name, '', us)),
    projectTotals: [...totals.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => entry(f.name, f.where, f.us)),
  };
}

export function summariseProfileFile(file: string, top = 25, window?: ProfileWindow): ProfileSummary {
  return summariseProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, top, window);
}

export function profileTables(summary: ProfileSummary, functions = 20, packages = 12): string {
  const lines = [
    `Busy ${(summary.busyMs / 1000).toFixed(1)} s of ${(summary.totalMs / 1000).toFixed(1)} s sampled; percentages are of busy time.`,
    '',
    '| self time by package (native code counted for its JavaScript caller) | ms | % |',
    '|---|---:|---:|',
    ...summary.packages.slice(0, packages).map((p) => `| ${p.name} | ${p.selfMs} | ${p.selfPercent} |`),
    '',
    '| top functions by self time | where | ms | % |',
    '|---|---|---:|---:|',
    ...summary.functions.slice(0, functions).map((f) => `| \`${f.name}\` | ${f.where} | ${f.selfMs} | ${f.selfPercent} |`),
    '',
    "| the project's functions by total time (self + synchronous callees) | where | ms | % |",
    '|---|---|---:|---:|',
    ...summary.projectTotals.slice(0, packages).map((f) => `| \`${f.name}\` | ${f.where} | ${f.selfMs} | ${f.selfPercent} |`),
  ];
  return lines.join('\n');
}

if (isMain(import.meta.url)) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node dist/bench/cpuprofile-summary.js <file.cpuprofile> [top]');
    process.exit(2);
  }
  console.log(profileTables(summariseProfileFile(file, Number(top ?? 25)), Number(top ?? 25), Number(top ?? 25)));
}
