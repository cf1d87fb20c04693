/*
 * sdnotify.h - the systemd notification protocol (sd_notify(3)) without libsystemd: one datagram
 * to the unix socket named by $NOTIFY_SOCKET (a path, or '@' for the abstract namespace).
 * framecast units are Type=notify with NotifyAccess=all so that a handoff restart can name the
 * new process as the main one (`MAINPID=`; docs/architecture.md §4.7).
 */
#ifndef FC_SDNOTIFY_H
#define FC_SDNOTIFY_H

/* Send `state` ("READY=1", "MAINPID=123\nREADY=1", ...). 0 if sent, 1 if $NOTIFY_SOCKET is not
 * set (not run by systemd: nothing to do), -1 with errno on failure. */
int sdnotify(const char *state);

#endif
