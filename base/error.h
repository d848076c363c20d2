/* Error codes shared by every module: 0 for success, a negative CG_E* otherwise. */
#ifndef CG_ERROR_H
#define CG_ERROR_H

enum {
	CG_OK = 0,
	CG_ENOMEM = -1,     /* out of memory */
	CG_EINVAL = -2,     /* invalid argument, config or profile */
	CG_EIO = -3,        /* I/O error on a device, socket or file */
	CG_ETIMEDOUT = -4,  /* the device did not answer in time */
	CG_ECRC = -5,       /* a frame failed its CRC or checksum */
	CG_EEXCEPTION = -6, /* the device answered with a Modbus exception */
	CG_EFRAME = -7,     /* a malformed, short or unexpected frame */
	CG_ENOENT = -8,     /* a file, profile, driver or bus not found */
	CG_EFULL = -9,      /* the disk or the store's page limit is full */
	CG_ESTATE = -10,    /* the call is not valid in the object's state */
	CG_EDB = -11,       /* an SQLite error other than a full disk */
	CG_EMQTT = -12,     /* the MQTT client refused the call */
	CG_ERANGE = -13,    /* a value outside its allowed range */
	CG_EAGAIN = -14,    /* nothing to do now; try again later */
	CG_EPERM = -15,     /* a file has unsafe permissions */
	CG_EBUSY = -16,     /* another process holds the store */
};

/* A short English description of code; never NULL, also for unknown codes. */
const char *cg_strerror(int code);

#endif
