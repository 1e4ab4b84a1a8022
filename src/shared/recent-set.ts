import { RecentMap } from './recent-map.js';

/**
 * A set that keeps only the `capacity` most recently added values: the oldest is forgotten first.
 * For memories that save work and may be lost (a forgotten value costs a look-up, never a wrong answer).
 */
export class RecentSet<T> {
  private readonly values: RecentMap<T, true>;

  constructor(capacity: number) {
    this.values = new RecentMap(capacity);
  }

  has(value: T): boolean {
    return this.values.has(value);
  }

  add(value: T): void {
    this.values.set(value, true);
  }

  get size(): number {
    return this.values.size;
  }
}
