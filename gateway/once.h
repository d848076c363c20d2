/* citygate --once: poll every sensor once and print what the daemon would publish, as NDJSON. */
#ifndef CG_ONCE_H
#define CG_ONCE_H

#include "gateway/config.h"

/* Polls each sensor of cfg once, bus by bus, and prints the readings the
 * daemon would publish for it (gateway/poll.h: one per lane, stamped), one
 * per line on stdout in the native format (no seq: nothing is stored), and
 * each failure on stderr. A sensor whose first poll only takes a counter's
 * baseline is polled again after its interval_s. Returns the exit status: 0
 * if every sensor answered with a reading, else 3. */
int cg_once_run(const cg_config_t *cfg);

#endif
