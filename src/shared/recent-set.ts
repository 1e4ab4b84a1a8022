/**
 * A set that keeps only the `capacity` most recently added values: the oldest is forgotten first.
 * For memories that save work and may be lost (a forgotten value costs a look-up, never a wrong answer).
 */
export class RecentSet<T> {
  private readonly values = new Set<T>();

  constructor(private readonly capacity: number) {}

  has(value: T): boolean {
    return this.values.has(value);
  }

  add(value: T): void {
    this.values.delete(value); // re-added: the most recent again
    this.values.add(value);
    if (this.values.size > this.capacity) this.values.delete(this.values.values().next().value as T);
  }

  get size(): number {
    return this.values.size;
  }
}
