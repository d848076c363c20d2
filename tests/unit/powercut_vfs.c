/* A test-only SQLite VFS over the unix one that simulates power cuts: what was not fsynced is lost.
 *
 * Every write (and truncate) to a named file is applied to the real file at once, as
 * the kernel's page cache would hold it, and logged with the bytes it overwrote and the
 * file's size before it. xSync of a file makes its logged writes durable: they leave
 * the log (no real fsync is needed, the simulation only has to know what was synced).
 * A cut, once the connections are closed, undoes the logged writes newest first, which
 * leaves each file as it was at its last sync, exactly what a disk holds after the
 * power goes with nothing flushed since; then, by kind, some lost writes land again,
 * in part. The -shm file is not logged: SQLite rebuilds it from the WAL when the first
 * connection after the cut opens the store. Unlinking a file is taken as durable at
 * once (SQLite deletes only files whose content it no longer needs). */
#include "powercut_vfs.h"

#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The unit a torn write is cut at: a disk writes whole sectors. */
#define PC_SECTOR 512

/* A file the VFS has seen opened by name; kept after its close for the cut. */
struct pc_track {
	char path[PATH_MAX];
	struct pc_track *next;
};

/* One write or truncate not yet made durable. */
struct pc_rec {
	struct pc_track *t;
	sqlite3_int64 off;      /* where it wrote, or the new size of a truncate */
	sqlite3_int64 old_size; /* the file's size before it */
	unsigned char *old;     /* the bytes it overwrote, from off on */
	size_t old_len;
	unsigned char *data; /* what it wrote (NULL for a truncate) */
	size_t len;
};

struct pc_file {
	sqlite3_file base;
	struct pc_track *t; /* NULL: not logged (temporary files, -shm) */
	sqlite3_file *real; /* the unix file, allocated right after this struct */
};

static struct {
	sqlite3_vfs vfs;
	sqlite3_vfs *unix_vfs;
	struct pc_track *tracks;
	struct pc_rec *recs;
	size_t n_recs, cap_recs;
	size_t cut_rec; /* records from here on were made after the cut */
	long ops_left;  /* < 0: no cut armed */
	bool cut;
	pc_counts_t counts;
} pc = {.ops_left = -1};

static struct pc_track *track_of(const char *path)
{
	struct pc_track *t;

	for (t = pc.tracks; t; t = t->next)
		if (strcmp(t->path, path) == 0)
			return t;
	t = calloc(1, sizeof(*t));
	if (!t || strlen(path) >= sizeof(t->path)) {
		free(t);
		return NULL;
	}
	strcpy(t->path, path);
	t->next = pc.tracks;
	pc.tracks = t;
	return t;
}

/* Counts one write or sync towards an armed cut; true once the power has gone. */
static bool tick(void)
{
	if (!pc.cut && pc.ops_left >= 0 && pc.ops_left-- == 0) {
		pc.cut = true;
		pc.cut_rec = pc.n_recs;
		pc.counts.cuts++;
	}
	return pc.cut;
}

static void free_rec(struct pc_rec *r)
{
	free(r->old);
	free(r->data);
}

/* Logs a write of len bytes (data NULL: a truncate to off) before it is applied,
 * reading the bytes it will overwrite from the real file. */
static int log_write(struct pc_file *f, const void *data, size_t len, sqlite3_int64 off)
{
	struct pc_rec r = {.t = f->t, .off = off, .len = len};
	sqlite3_int64 end;
	int rc;

	rc = f->real->pMethods->xFileSize(f->real, &r.old_size);
	if (rc != SQLITE_OK)
		return rc;
	end = data ? off + (sqlite3_int64)len : r.old_size;
	if (end > r.old_size)
		end = r.old_size;
	if (end > off) {
		r.old_len = (size_t)(end - off);
		r.old = malloc(r.old_len);
		if (!r.old)
			return SQLITE_NOMEM;
		rc = f->real->pMethods->xRead(f->real, r.old, (int)r.old_len, off);
		if (rc != SQLITE_OK) {
			free(r.old);
			return rc;
		}
	}
	if (data) {
		r.data = malloc(len ? len : 1);
		if (!r.data) {
			free(r.old);
			return SQLITE_NOMEM;
		}
		memcpy(r.data, data, len);
	}
	if (pc.n_recs == pc.cap_recs) {
		size_t cap = pc.cap_recs ? pc.cap_recs * 2 : 1024;
		struct pc_rec *p = realloc(pc.recs, cap * sizeof(*p));

		if (!p) {
			free_rec(&r);
			return SQLITE_NOMEM;
		}
		pc.recs = p;
		pc.cap_recs = cap;
	}
	pc.recs[pc.n_recs++] = r;
	pc.counts.writes++;
	return SQLITE_OK;
}

/* Makes the logged writes of track t durable: they leave the log. */
static void make_durable(struct pc_track *t)
{
	size_t i, o = 0;

	for (i = 0; i < pc.n_recs; i++) {
		if (pc.recs[i].t == t)
			free_rec(&pc.recs[i]);
		else
			pc.recs[o++] = pc.recs[i];
	}
	pc.n_recs = o;
}

static int pc_close(sqlite3_file *file)
{
	struct pc_file *f = (struct pc_file *)file;

	return f->real->pMethods->xClose(f->real);
}

static int pc_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
	struct pc_file *f = (struct pc_file *)file;

	return f->real->pMethods->xRead(f->real, buf, amt, off);
}

static int pc_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
	struct pc_file *f = (struct pc_file *)file;

	if (f->t) {
		int rc;

		tick();
		rc = log_write(f, buf, (size_t)amt, off);
		if (rc != SQLITE_OK)
			return rc;
	}
	return f->real->pMethods->xWrite(f->real, buf, amt, off);
}

static int pc_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct pc_file *f = (struct pc_file *)file;

	if (f->t) {
		int rc;

		tick();
		rc = log_write(f, NULL, 0, size);
		if (rc != SQLITE_OK)
			return rc;
	}
	return f->real->pMethods->xTruncate(f->real, size);
}

/* A sync before the cut makes the file's writes durable; after it, nothing does. The
 * real file is not fsynced: the simulation only needs to know what was. */
static int pc_sync(sqlite3_file *file, int flags)
{
	struct pc_file *f = (struct pc_file *)file;

	(void)flags;
	if (f->t && !tick()) {
		make_durable(f->t);
		pc.counts.syncs++;
	}
	return SQLITE_OK;
}

static int pc_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct pc_file *f = (struct pc_file *)file;

	return f->real->pMethods->xFileSize(f->real, size);
}

static int pc_lock(sqlite3_file *file, int level)
{
	struct pc_file *f = (struct pc_file *)file;

	return f->real->pMethods->xLock(f->real, level);
}

static int pc_unlock(sqlite3_file *file, int level)
{
	struct pc_file *f = (struct pc_file *)file;

	return f->real->pMethods->xUnlock(f->real, level);
}

static int pc_check_reserved(sqlite3_file *file, int *out)
{
	struct pc_file *f = (struct pc_file *)file;

	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int pc_file_control(sqlite3_file *file, int op, void *arg)
{
	struct pc_file *f = (struct pc_file *)file;

	return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int pc_sector_size(sqlite3_file *file)
{
	struct pc_file *f = (struct pc_file *)file;

	return f->real->pMethods->xSectorSize(f->real);
}

static int pc_device_characteristics(sqlite3_file *file)
{
	struct pc_file *f = (struct pc_file *)file;

	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

/* The wal-index lives in shared memory, which a power cut wipes anyway: passed through. */
static int pc_shm_map(sqlite3_file *file, int region, int size, int extend, void volatile **pp)
{
	struct pc_file *f = (struct pc_file *)file;

	return f->real->pMethods->xShmMap(f->real, region, size, extend, pp);
}

static int pc_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
	struct pc_file *f = (struct pc_file *)file;

	return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void pc_shm_barrier(sqlite3_file *file)
{
	struct pc_file *f = (struct pc_file *)file;

	f->real->pMethods->xShmBarrier(f->real);
}

static int pc_shm_unmap(sqlite3_file *file, int delete_flag)
{
	struct pc_file *f = (struct pc_file *)file;

	return f->real->pMethods->xShmUnmap(f->real, delete_flag);
}

/* Version 2: no xFetch, so SQLite never reads through a memory map that would bypass
 * this layer. */
static const sqlite3_io_methods pc_io = {
    .iVersion = 2,
    .xClose = pc_close,
    .xRead = pc_read,
    .xWrite = pc_write,
    .xTruncate = pc_truncate,
    .xSync = pc_sync,
    .xFileSize = pc_file_size,
    .xLock = pc_lock,
    .xUnlock = pc_unlock,
    .xCheckReservedLock = pc_check_reserved,
    .xFileControl = pc_file_control,
    .xSectorSize = pc_sector_size,
    .xDeviceCharacteristics = pc_device_characteristics,
    .xShmMap = pc_shm_map,
    .xShmLock = pc_shm_lock,
    .xShmBarrier = pc_shm_barrier,
    .xShmUnmap = pc_shm_unmap,
};

static int pc_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                   int *out_flags)
{
	struct pc_file *f = (struct pc_file *)file;
	int rc;

	(void)vfs;
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)(f + 1);
	rc = pc.unix_vfs->xOpen(pc.unix_vfs, name, f->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		f->real->pMethods = NULL;
		return rc;
	}
	if (name && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL))) {
		f->t = track_of(name);
		if (!f->t) {
			f->real->pMethods->xClose(f->real);
			f->real->pMethods = NULL;
			return SQLITE_NOMEM;
		}
	}
	f->base.pMethods = &pc_io;
	return SQLITE_OK;
}

/* After the cut a delete never happens; before it, it is durable at once and the file's
 * logged writes go with it. */
static int pc_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	struct pc_track *t;

	(void)vfs;
	if (tick())
		return SQLITE_OK;
	for (t = pc.tracks; t; t = t->next)
		if (strcmp(t->path, name) == 0)
			make_durable(t);
	return pc.unix_vfs->xDelete(pc.unix_vfs, name, sync_dir);
}

int pc_vfs_register(void)
{
	pc.unix_vfs = sqlite3_vfs_find("unix");
	if (!pc.unix_vfs)
		return SQLITE_ERROR;
	/* The unix VFS's own functions (access, full path, randomness, time) are reused;
	 * they read only fields that the copy keeps. */
	pc.vfs = *pc.unix_vfs;
	pc.vfs.pNext = NULL;
	pc.vfs.zName = "powercut";
	pc.vfs.szOsFile = (int)sizeof(struct pc_file) + pc.unix_vfs->szOsFile;
	pc.vfs.xOpen = pc_open;
	pc.vfs.xDelete = pc_delete;
	return sqlite3_vfs_register(&pc.vfs, 1);
}

void pc_vfs_cut_after(long ops)
{
	pc.ops_left = ops;
	pc.cut = false;
}

bool pc_vfs_cut_happened(void)
{
	return pc.cut;
}

void pc_vfs_counts(pc_counts_t *out)
{
	*out = pc.counts;
}

/* Writes the bytes of a record back into its file, or (torn > 0) the first torn bytes
 * of what it wrote. */
static int rewrite(const struct pc_rec *r, bool undo, size_t torn)
{
	int fd = open(r->t->path, O_RDWR | O_CLOEXEC);
	int ok = fd >= 0;

	if (ok && undo) {
		ok = (r->old_len == 0 ||
		      pwrite(fd, r->old, r->old_len, r->off) == (ssize_t)r->old_len) &&
		     ftruncate(fd, r->old_size) == 0;
	} else if (ok) {
		ok = pwrite(fd, r->data, torn, r->off) == (ssize_t)torn;
	}
	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* A whole number of sectors of a write, fewer than all of it when it spans more than
 * one; none of a write of one sector or less. */
static size_t torn_prefix(const struct pc_rec *r, unsigned *seed)
{
	size_t sectors = r->len / PC_SECTOR;

	return sectors > 1 ? (size_t)(rand_r(seed) % (unsigned)sectors) * PC_SECTOR : 0;
}

int pc_vfs_restore(pc_cut_kind_t kind, unsigned seed)
{
	size_t before = pc.cut ? pc.cut_rec : pc.n_recs; /* the writes made before the cut */
	size_t keep = 0, i;
	const struct pc_rec *tear = NULL;
	int err = 0;

	if (kind == PC_KEEP_PREFIX && before > 0)
		keep = (size_t)rand_r(&seed) % (before + 1);
	if (kind == PC_TEAR_LAST && before > 0)
		tear = &pc.recs[before - 1];
	else if (kind == PC_KEEP_PREFIX && keep < before)
		tear = &pc.recs[keep];
	if (tear && !tear->data)
		tear = NULL;
	for (i = pc.n_recs; i > keep; i--)
		if (rewrite(&pc.recs[i - 1], true, 0) != 0)
			err = -1;
	if (tear) {
		size_t torn = torn_prefix(tear, &seed);

		if (torn > 0 && rewrite(tear, false, torn) != 0)
			err = -1;
		if (torn > 0)
			pc.counts.torn++;
	}
	for (i = 0; i < pc.n_recs; i++)
		free_rec(&pc.recs[i]);
	pc.n_recs = 0;
	pc.cut = false;
	pc.ops_left = -1;
	return err;
}
