// The public face of the transfers feature: other features import from here, never from inner files
// (`npm run boundaries` checks it). No other feature needs more than the module today.
export { TransfersModule } from './transfers.module.js';
