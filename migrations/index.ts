// Every migration, in order. Listed explicitly (no glob) so the compiled app and the tests load
// exactly the same set, whatever the module system.
import { CreateEventStore1764230400000 } from './1764230400000-create-event-store.js';
import { CreateAccountSummaries1764230400001 } from './1764230400001-create-account-summaries.js';
import { CreateProjectionCheckpoints1764230400002 } from './1764230400002-create-projection-checkpoints.js';
import { CreateAccountTransactions1764230400003 } from './1764230400003-create-account-transactions.js';
import { CreateIdempotencyKeys1764230400004 } from './1764230400004-create-idempotency-keys.js';
import { CreateTransfers1764230400005 } from './1764230400005-create-transfers.js';
import { IndexEventTypes1764230400006 } from './1764230400006-index-event-types.js';
import { CreateSnapshots1764230400007 } from './1764230400007-create-snapshots.js';
import { AddTransactionReference1764230400008 } from './1764230400008-add-transaction-reference.js';
import { ReplayTransferProcess1764230400009 } from './1764230400009-replay-transfer-process.js';
import { RecordEventsAtClockTime1764230400010 } from './1764230400010-record-events-at-clock-time.js';
import { CreateRoles1764230400011 } from './1764230400011-create-roles.js';
import { GuardEventInserts1764230400012 } from './1764230400012-guard-event-inserts.js';
import { FenceProjectionLeases1764230400013 } from './1764230400013-fence-projection-leases.js';
import { PinSchemasAndColumns1764230400014 } from './1764230400014-pin-schemas-and-columns.js';
import { KeepSnapshotHistory1764230400015 } from './1764230400015-keep-snapshot-history.js';
import { IndexTransferChains1764230400016 } from './1764230400016-index-transfer-chains.js';
import { WakeReadersAfterCommit1764230400017 } from './1764230400017-wake-readers-after-commit.js';
import { SegmentProjections1764230400018 } from './1764230400018-segment-projections.js';
import { RememberReactionsAhead1764230400019 } from './1764230400019-remember-reactions-ahead.js';
import { AdvanceReadModelsWithCommit1764230400020 } from './1764230400020-advance-read-models-with-commit.js';

export const migrations = [
  CreateEventStore1764230400000,
  CreateAccountSummaries1764230400001,
  CreateProjectionCheckpoints1764230400002,
  CreateAccountTransactions1764230400003,
  CreateIdempotencyKeys1764230400004,
  CreateTransfers1764230400005,
  IndexEventTypes1764230400006,
  CreateSnapshots1764230400007,
  AddTransactionReference1764230400008,
  ReplayTransferProcess1764230400009,
  RecordEventsAtClockTime1764230400010,
  CreateRoles1764230400011,
  GuardEventInserts1764230400012,
  FenceProjectionLeases1764230400013,
  PinSchemasAndColumns1764230400014,
  KeepSnapshotHistory1764230400015,
  IndexTransferChains1764230400016,
  WakeReadersAfterCommit1764230400017,
  SegmentProjections1764230400018,
  RememberReactionsAhead1764230400019,
  AdvanceReadModelsWithCommit1764230400020,
];
