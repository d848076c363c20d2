/* Secrets in memory of their own: pages out of core dumps and swap, wiped on release. */
#include "base/secret.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/error.h"

/* The mapping starts with its own size, so that cg_secret_free() needs only the
 * string; the string follows, aligned as the header is. */
struct secret_head {
	size_t size;
	char s[];
};

int cg_secret_dup(const char *s, char **out)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), len, size;
	struct secret_head *h;

	*out = NULL;
	if (!s)
		return CG_OK;
	len = strlen(s);
	if (len > SIZE_MAX - sizeof(*h) - page)
		return CG_ENOMEM;
	size = (sizeof(*h) + len + 1 + page - 1) / page * page;
	h = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (h == MAP_FAILED)
		return CG_ENOMEM;
	if (madvise(h, size, MADV_DONTDUMP) != 0) {
		munmap(h, size);
		return CG_ENOMEM;
	}
	/* Best effort: the default memlock limit allows a page or two, and a swapped page
	 * is a smaller risk than a secret left in a core dump. */
	(void)mlock(h, size);
	h->size = size;
	memcpy(h->s, s, len + 1);
	*out = h->s;
	return CG_OK;
}

void cg_secret_free(char *s)
{
	struct secret_head *h;
	size_t size;

	if (!s)
		return;
	h = (struct secret_head *)(s - offsetof(struct secret_head, s));
	size = h->size;
	explicit_bzero(h, size);
	munlock(h, size);
	munmap(h, size);
}
