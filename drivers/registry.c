/* The compile-time table of drivers (one line here registers one) and the walk of their keys. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "drivers/driver.h"

extern const cg_driver_t cg_modbus_driver;
extern const cg_driver_t cg_pms5003_driver;
extern const cg_driver_t cg_sds011_driver;
extern const cg_driver_t cg_a02yyuw_driver;

const cg_driver_t *const cg_drivers[] = {
	&cg_modbus_driver,
	&cg_pms5003_driver,
	&cg_sds011_driver,
	&cg_a02yyuw_driver,
	NULL,
};

const cg_driver_t *cg_driver_find(const char *name)
{
	for (size_t i = 0; cg_drivers[i]; i++)
		if (strcmp(cg_drivers[i]->name, name) == 0)
			return cg_drivers[i];
	return NULL;
}

const char *cg_driver_env_file(const cg_driver_env_t *env)
{
	return env && env->config_path ? env->config_path : "config";
}

int cg_driver_options(const cg_driver_t *d, const cJSON *sensor, const char *pointer,
                      const cg_driver_env_t *env, cg_diag_t *diag, cg_driver_options_t **options)
{
	/* The common keys are the config's: they are neither refused nor judged here. */
	static const cg_keys_scope_t theirs = {.others = true};
	cg_walk_t w = {.file = cg_driver_env_file(env), .diag = diag};
	cg_driver_options_t *o = calloc(1, d->options_size ? d->options_size : 1);
	int rc = 0;

	*options = NULL;
	if (!o)
		return CG_ENOMEM;
	cg_keys_walk(&w, sensor, pointer, d->keys, o, &theirs, NULL);
	if (d->check)
		rc = d->check(o, sensor, pointer, env, diag);
	if (w.nomem || rc == CG_ENOMEM)
		rc = CG_ENOMEM;
	else if (w.errors || rc)
		rc = CG_EINVAL;
	if (rc) {
		cg_driver_options_free(d, o);
		return rc;
	}
	*options = o;
	return 0;
}

void cg_driver_options_free(const cg_driver_t *d, cg_driver_options_t *options)
{
	if (!d || !options)
		return;
	if (d->release)
		d->release(options);
	cg_keys_free(d->keys, options);
	free(options);
}
