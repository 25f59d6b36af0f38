/*
 * process.h: the master process. main() hands over to it once the command
 * line is parsed. The master loads the config, opens the error log and the
 * listening sockets, runs lua.init, writes the pid file, forks the workers
 * and then only reacts to signals (see DESIGN.md): it respawns workers that
 * die, reloads on HUP, reopens logs on USR1 and stops on QUIT, TERM or INT.
 * It never serves a request.
 */
#ifndef MP_PROCESS_H
#define MP_PROCESS_H

#include "core/mp_core.h"

/*
 * Runs the master for the config file at conf_path (as given on the command
 * line) until it stops; returns the process exit status: 0 after a stop, 1
 * when start-up failed (the reason is on stderr, and in the error log once
 * that is open). argc and argv are main()'s: a worker overwrites the
 * argument area with its title ("moonpool: worker 0"), so the caller must
 * not use argv strings in a worker. Call once, from main().
 */
int mp_process_master(const char *conf_path, int argc, char **argv);

#endif /* MP_PROCESS_H */
