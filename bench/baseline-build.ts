// The build of another commit for the HTTP benchmark's same-run comparison (issue 14): its
// dist/src/main.js runs as a second service next to the current build.
//   BENCH_HTTP_BASELINE_REF=<commit>   exported with `git archive` into a temporary directory (no
//                                      worktree is registered), then `npm ci` (or this worktree's
//                                      node_modules when the lock file is the same) and `tsc`
//   BENCH_HTTP_BASELINE_DIR=<dir>      a checkout to use as it is (built first if it has no dist/)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface BaselineBuild {
  /** What it was built from: the ref as given, with the commit it resolved to. */
  readonly ref: string;
  readonly mainScript: string;
  cleanup(): void;
}

function run(command: string, args: string[], cwd: string): string {
  const done = spawnSync(command, args, { cwd, encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024 });
  if (done.status !== 0) throw new Error(`${command} ${args.join(' ')} failed in ${cwd}:\n${done.stdout}${done.stderr}`);
  return done.stdout;
}

function build(dir: string): void {
  console.error(`http: building the baseline in ${dir} (tsc)…`);
  // Type errors of an older commit do not stop tsc from emitting: only a missing main.js does.
  spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: dir, encoding: 'utf8' });
  if (!existsSync(join(dir, 'dist', 'src', 'main.js'))) throw new Error(`the baseline build in ${dir} has no dist/src/main.js`);
}

export function prepareBaseline(root: string, env: NodeJS.ProcessEnv = process.env): BaselineBuild | undefined {
  if (env.BENCH_HTTP_BASELINE_DIR) {
    const dir = env.BENCH_HTTP_BASELINE_DIR;
    if (!existsSync(join(dir, 'dist', 'src', 'main.js'))) build(dir);
    const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: dir, encoding: 'utf8' }).stdout.trim();
    return { ref: commit || dir, mainScript: join(dir, 'dist', 'src', 'main.js'), cleanup: () => undefined };
  }
  const ref = env.BENCH_HTTP_BASELINE_REF;
  if (!ref) return undefined;
  const commit = run('git', ['rev-parse', '--short', `${ref}^{commit}`], root).trim();
  const parent = mkdtempSync(join(tmpdir(), 'ledger-bench-baseline-'));
  const dir = join(parent, 'src');
  try {
    console.error(`http: exporting ${ref} (${commit}) into ${dir}…`);
    run('sh', ['-c', `mkdir -p "${dir}" && git archive --format=tar ${commit} | tar -x -C "${dir}"`], root);
    const sameLock = spawnSync('git', ['diff', '--quiet', commit, '--', 'package-lock.json'], { cwd: root }).status === 0;
    if (sameLock && existsSync(join(root, 'node_modules'))) symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
    else {
      console.error('http: npm ci for the baseline (its lock file differs)…');
      run('npm', ['ci', '--no-audit', '--no-fund'], dir);
    }
    build(dir);
  } catch (error) {
    rmSync(parent, { recursive: true, force: true });
    throw error;
  }
  return {
    ref: ref === commit ? commit : `${ref} (${commit})`,
    mainScript: join(dir, 'dist', 'src', 'main.js'),
    cleanup: () => rmSync(parent, { recursive: true, force: true }),
  };
}
