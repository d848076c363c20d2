/* Secrets (the MQTT password) in memory of their own: left out of core dumps, kept out of swap where allowed, wiped on release. */
#ifndef CG_SECRET_H
#define CG_SECRET_H

/* Copies the string s into pages of its own, marked MADV_DONTDUMP so that a core dump
 * leaves them out, and locked against swapping when the memlock limit allows. *out is
 * NULL when s is NULL. CG_ENOMEM when the pages cannot be had or marked: a secret is
 * never kept where a dump would show it. Release with cg_secret_free(). */
int cg_secret_dup(const char *s, char **out);

/* Wipes a secret from cg_secret_dup() and releases its pages; accepts NULL. Replacing
 * a secret is freeing the old one and copying the new. */
void cg_secret_free(char *s);

#endif
