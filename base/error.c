/* Names of the CG_E* error codes. */
#include "base/error.h"

const char *cg_strerror(int code)
{
	switch (code) {
	case CG_OK: return "success";
	case CG_ENOMEM: return "out of memory";
	case CG_EINVAL: return "invalid argument";
	case CG_EIO: return "input/output error";
	case CG_ETIMEDOUT: return "timed out";
	case CG_ECRC: return "CRC or checksum error";
	case CG_EEXCEPTION: return "device exception";
	case CG_EFRAME: return "malformed frame";
	case CG_ENOENT: return "not found";
	case CG_EFULL: return "storage full";
	case CG_ESTATE: return "invalid state";
	case CG_EDB: return "database error";
	case CG_EMQTT: return "MQTT client error";
	case CG_ERANGE: return "value out of range";
	case CG_EAGAIN: return "try again";
	case CG_EPERM: return "unsafe file permissions";
	case CG_EBUSY: return "in use by another process";
	}
	return "unknown error";
}
