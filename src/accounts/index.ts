// The public face of the accounts feature: other features import from here, never from inner files
// (`npm run boundaries` checks it). Transfers move money through the transfer-leg commands.
export { AccountsModule } from './accounts.module.js';
export { AccountLookup, type OpenedAccount } from './account-lookup.js';
export { accountStreamId } from './account.js';
export { AccountNotFoundError } from './account.errors.js';
export { CreditForTransfer, DebitForTransfer, RefundTransfer, SettleTransfer } from './transfer-legs/transfer-leg.commands.js';
