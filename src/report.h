/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Messages for the optional error handler (shm_set_error_handler).
 */
#ifndef SHM_REPORT_H
#define SHM_REPORT_H

/* Formats a message and hands it to the handler, if one is set. Keeps
 * errno as it was. */
void shmi_report(const char *format, ...) __attribute__((format(printf, 1, 2)));

#endif /* SHM_REPORT_H */
