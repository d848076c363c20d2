/* citygate --once: poll every sensor once and print native readings as NDJSON. */
#ifndef CG_ONCE_H
#define CG_ONCE_H

#include "gateway/config.h"

/* Polls each sensor of cfg once, bus by bus, prints one native reading per
 * line on stdout (no seq: nothing is stored) and each failure on stderr.
 * Returns the exit status: 0 if every sensor answered, else 3. */
int cg_once_run(const cg_config_t *cfg);

#endif
