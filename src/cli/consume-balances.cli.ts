// `npm run consume:balances` (development): the reference consumer behind the broker; in a
// production install, `ledger consume balances`. See src/consumer/run-balances-consumer.ts.
import { runBalancesConsumer } from '../consumer/run-balances-consumer.js';

runBalancesConsumer().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
