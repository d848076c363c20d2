/* A test-only SQLite VFS over the unix one that simulates power cuts: what was not fsynced is lost.
 */
#ifndef CG_POWERCUT_VFS_H
#define CG_POWERCUT_VFS_H

#include <stdbool.h>
#include <stddef.h>

/* What the files saw since pc_vfs_register(). */
typedef struct pc_counts {
	long writes; /* xWrite and xTruncate calls */
	long syncs;  /* xSync calls that made something durable */
	long cuts;
	long torn; /* cuts that tore a write */
} pc_counts_t;

/* How a cut treats the writes not yet made durable: all lost; all lost but the last
 * one before the cut, of which a whole-sector prefix lands (a torn page); or a random
 * prefix of them, in order, lands, and a whole-sector prefix of the next one. */
typedef enum pc_cut_kind { PC_DISCARD_ALL, PC_TEAR_LAST, PC_KEEP_PREFIX } pc_cut_kind_t;

/* Registers the VFS "powercut" as the default, wrapping "unix". 0 or an SQLite code. */
int pc_vfs_register(void);

/* The power goes after ops more writes or syncs (0: at the next one). From then on
 * nothing written reaches the disk: writes are still applied so that the connection
 * keeps a consistent view until it is closed, but syncs make nothing durable and
 * deletes are ignored. */
void pc_vfs_cut_after(long ops);

/* Whether the power has gone since the last pc_vfs_cut_after(). */
bool pc_vfs_cut_happened(void);

/* Applies the cut, once every connection on the files is closed: each file gets back
 * the content it had at its last sync, then (by kind) some of the lost writes land,
 * chosen with seed. Every file is then as after a reboot, and the VFS works normally
 * again. 0, or -1 when a file cannot be rewritten. */
int pc_vfs_restore(pc_cut_kind_t kind, unsigned seed);

void pc_vfs_counts(pc_counts_t *out);

#endif
