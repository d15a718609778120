/** `node dist/src/testing/build-guests.js`: builds the test guests (used by `npm run demo`). */
import { buildGuests, GUESTS_DIR } from './guests.js';

const r = buildGuests();
if (!r.ok) {
  process.stderr.write(`nodevisor: cannot build the test guests in ${GUESTS_DIR}: ${r.reason}\n`);
  process.exit(1);
}
