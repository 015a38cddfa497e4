/*
 * lyceumd as a service of systemd (packaging/lyceumd.service, Type=notify): it tells the
 * service manager when it serves (READY=1, once its own /health has answered), when it
 * reloads (RELOADING=1, then READY=1) and when it stops (STOPPING=1), through libsystemd's
 * sd_notify; and where the unit sets WatchdogSec, a thread pings the watchdog (WATCHDOG=1) at
 * half its interval, each time only after GET /health on the server's own address answered
 * 200 within a quarter of it, so that a server that no longer answers is restarted.
 *
 * Outside systemd (no NOTIFY_SOCKET) every call does nothing. Call from the main thread.
 */
#ifndef LYCEUMD_ADMIN_SERVICE_H
#define LYCEUMD_ADMIN_SERVICE_H

/* Says READY=1 once GET /health at listen ("host:port") answers (within 10 s), and starts the
 * watchdog's thread when the service manager asked for one. */
void service_ready(const char *listen);
void service_reloading(void);
void service_reloaded(const char *status);
/* Says STOPPING=1 and ends the watchdog's thread. */
void service_stopping(void);

#endif
