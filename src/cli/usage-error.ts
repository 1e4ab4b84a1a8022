/** A bad argument the parser could not see (an unknown scope, a malformed TTL): exit 2 with the usage. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
