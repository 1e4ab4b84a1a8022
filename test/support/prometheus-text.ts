/**
 * A strict reader of the Prometheus text exposition format (0.0.4): every line is a `# HELP`, a
 * `# TYPE` or a sample of a family whose TYPE came before it; metric and label names, label value
 * escapes and numbers must be exactly as the format says, or it throws naming the line. Good enough
 * to know that Prometheus would read /metrics, and to look values up.
 */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Exposition {
  readonly types: ReadonlyMap<string, string>;
  readonly samples: readonly Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = `([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"`;
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*,?)?\\})? (\\S+)(?: -?\\d+)?$`);
// Prometheus reads a value with Go's strconv.ParseFloat, which takes NaN and Inf in any case:
// prom-client writes `Nan` (e.g. nodejs_eventloop_lag_mean_seconds before its first sample).
const VALUE = /^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]?inf(?:inity)?|nan)$/i;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count', ''] };

export function parsePrometheusText(text: string): Exposition {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, index) => {
      const where = `line ${index + 1}: ${JSON.stringify(line)}`;
      const comment = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (comment) {
        const [, kind, name, rest] = comment;
        if (!new RegExp(`^${NAME}$`).test(name)) throw new Error(`bad metric name, ${where}`);
        if (kind === 'TYPE') {
          if (!TYPES.has(rest)) throw new Error(`unknown type, ${where}`);
          if (types.has(name)) throw new Error(`second TYPE for ${name}, ${where}`);
          types.set(name, rest);
        }
        return;
      }
      if (line === '') return; // the format ignores empty lines (prom-client puts one between families)
      if (line.startsWith('#')) throw new Error(`unexpected comment, ${where}`);
      const match = SAMPLE.exec(line);
      if (!match) throw new Error(`not a sample, ${where}`);
      const [, name, labelText = '', , , , , value] = match;
      if (!VALUE.test(value)) throw new Error(`bad value, ${where}`);
      const family = [...types.keys()].find(
        (candidate) => candidate === name || (SUFFIXES[types.get(candidate)!] ?? []).some((suffix) => `${candidate}${suffix}` === name),
      );
      if (!family) throw new Error(`sample before its TYPE, ${where}`);
      const labels: Record<string, string> = {};
      for (const [, label, raw] of labelText.matchAll(new RegExp(LABEL, 'g'))) {
        if (label in labels) throw new Error(`label ${label} twice, ${where}`);
        labels[label] = raw.replace(/\\(["\\n])/g, (_all, escaped: string) => (escaped === 'n' ? '\n' : escaped));
      }
      samples.push({ name, labels, value: Number(value.replace(/^\+/, '')) });
    });
  return { types, samples };
}

/** The value of the one sample named `name` whose labels include `labels`; 0 when there is none (a counter not yet moved). */
export function valueOf(exposition: Exposition, name: string, labels: Record<string, string> = {}): number {
  const found = exposition.samples.filter(
    (sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  );
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value ?? 0;
}
