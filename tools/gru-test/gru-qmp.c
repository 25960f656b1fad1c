// SPDX-License-Identifier: GPL-2.0
/*
 * gru-qmp: talk to QEMU's QMP monitor from inside the test guest.
 *
 * scripts/guest-run.sh wires the guest's fourth serial port (ttyS3) to a
 * QMP monitor through a host-side relay, so a guest test can unplug and
 * plug its own devices:
 *
 *   gru-qmp [-d TTY] [-t SECONDS] [-v] device_del ID
 *   gru-qmp [-d TTY] [-t SECONDS] [-v] device_add DRIVER[,key=value...]
 *   gru-qmp [-d TTY] [-t SECONDS] [-v] raw 'JSON command'
 *   gru-qmp [-d TTY] [-t SECONDS] [-v] COMMAND [key=value...]
 *
 * device_del waits for the DEVICE_DELETED event of ID (the guest has
 * released the device), not just for QEMU's "return".  device_add turns
 * "on"/"off"/"true"/"false" into JSON booleans and plain numbers into
 * JSON numbers, except for driver, id and bus, which stay strings.  raw
 * sends the object as given, plus an "id" member (so it must not have a
 * top-level "id" of its own).  Any other COMMAND is sent with its key=value arguments as strings.
 * The reply (one line of JSON) is printed on stdout; the exit status is 0
 * on "return", 1 on an "error" reply or a timeout, 2 on a usage or I/O
 * error.
 *
 * The QMP session belongs to the relay and outlives this program: the
 * greeting is seen only by whoever reads first, events may be queued from
 * an earlier run, and the last run may have died halfway through a
 * command.  So nothing here depends on the greeting: the port is flushed,
 * a 0xff byte resets QEMU's JSON parser, every command carries an id of
 * its own ("gru-qmp-<pid>-<n>") and only the reply with that id counts.
 * qmp_capabilities is sent every time; "CommandNotFound" means the session
 * had negotiated already and is fine.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TTY	"/dev/ttyS3"
#define LINE_MAX_LEN	(1 << 20)

static const char *prog = "gru-qmp";
static int tty_fd = -1;
static bool verbose;
static unsigned int seq;

/* bytes read from the port and not yet consumed as lines */
static char *rbuf;
static size_t rlen;

static void die(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(code);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- a growing string --------------------------------------------------- */

struct sbuf {
	char *s;
	size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		if (!b->s)
			die(2, "out of memory");
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/* Append s as a JSON string, quotes included. */
static void sb_json_str(struct sbuf *b, const char *s, size_t n)
{
	char esc[8];
	size_t i;

	sb_puts(b, "\"");
	for (i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = c;
			sb_add(b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			sb_puts(b, esc);
		} else {
			sb_add(b, (const char *)&c, 1);
		}
	}
	sb_puts(b, "\"");
}

/* ---- the serial port ---------------------------------------------------- */

static void tty_open(const char *path)
{
	struct termios t;

	tty_fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK);
	if (tty_fd < 0)
		die(2, "open %s: %s (booted by scripts/guest-run.sh?)", path,
		    strerror(errno));
	if (tcgetattr(tty_fd, &t))
		die(2, "tcgetattr %s: %s", path, strerror(errno));
	cfmakeraw(&t);
	t.c_cflag |= CLOCAL | CREAD;
	t.c_cflag &= ~CRTSCTS;
	t.c_iflag &= ~(IXON | IXOFF | IXANY);
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	cfsetispeed(&t, B115200);
	cfsetospeed(&t, B115200);
	if (tcsetattr(tty_fd, TCSANOW, &t))
		die(2, "tcsetattr %s: %s", path, strerror(errno));
	tcflush(tty_fd, TCIOFLUSH);
}

static void tty_write(const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(tty_fd, s, n);

		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				struct pollfd p = { .fd = tty_fd, .events = POLLOUT };

				poll(&p, 1, 100);
				continue;
			}
			die(2, "write: %s", strerror(errno));
		}
		s += w;
		n -= w;
	}
	tcdrain(tty_fd);
}

/* Read what is there, waiting at most until the deadline; 0 on timeout. */
static int tty_fill(double deadline)
{
	static char chunk[4096];
	struct pollfd p = { .fd = tty_fd, .events = POLLIN };
	double left = deadline - now();
	ssize_t r;
	int ret;

	if (left <= 0)
		return 0;
	ret = poll(&p, 1, (int)(left * 1000) + 1);
	if (ret < 0) {
		if (errno == EINTR)
			return 1;
		die(2, "poll: %s", strerror(errno));
	}
	if (ret == 0)
		return 0;
	r = read(tty_fd, chunk, sizeof(chunk));
	if (r < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 1;
		die(2, "read: %s", strerror(errno));
	}
	if (r == 0)
		return 1;
	if (rlen + r > LINE_MAX_LEN) {
		/* a runaway line: keep the tail, which may hold a newline */
		rlen = 0;
	}
	rbuf = realloc(rbuf, rlen + r + 1);
	if (!rbuf)
		die(2, "out of memory");
	memcpy(rbuf + rlen, chunk, r);
	rlen += r;
	rbuf[rlen] = '\0';
	return 1;
}

/*
 * Next complete line, NUL-terminated and stripped of CR/LF, in a buffer the
 * caller frees; NULL if the deadline passes first.
 */
static char *tty_line(double deadline)
{
	for (;;) {
		char *nl = rlen ? memchr(rbuf, '\n', rlen) : NULL;

		if (nl) {
			size_t n = nl - rbuf;
			char *line = malloc(n + 1);

			if (!line)
				die(2, "out of memory");
			memcpy(line, rbuf, n);
			line[n] = '\0';
			while (n && line[n - 1] == '\r')
				line[--n] = '\0';
			rlen -= nl + 1 - rbuf;
			memmove(rbuf, nl + 1, rlen);
			if (verbose)
				fprintf(stderr, "%s: <- %s\n", prog, line);
			return line;
		}
		if (!tty_fill(deadline))
			return NULL;
	}
}

/* Throw away whatever an earlier session left: read until 0.3 s of quiet. */
static void tty_drain(void)
{
	double stop = now() + 3;
	size_t dropped = 0;

	while (now() < stop) {
		if (!tty_fill(now() + 0.3))
			break;
		dropped += rlen;
		rlen = 0;
	}
	rlen = 0;
	if (verbose && dropped)
		fprintf(stderr, "%s: dropped %zu stale bytes\n", prog, dropped);
}

/* ---- minimal JSON look-ups ---------------------------------------------- */

/*
 * Find the next "key": "value" at or after p and copy the value (escapes
 * kept as they are) into out; return where to look for the next one, or
 * NULL.  Good enough for QMP's own replies and events, whose keys and ids
 * we choose or know.
 */
static const char *json_next_str(const char *p, const char *key, char *out,
				 size_t outsz)
{
	size_t klen = strlen(key);

	while ((p = strchr(p, '"'))) {
		const char *q = p + 1;
		size_t n = 0;

		p++;
		if (strncmp(q, key, klen) || q[klen] != '"')
			continue;
		q += klen + 1;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q != ':')
			continue;
		q++;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q != '"')
			continue;
		q++;
		while (q[n] && q[n] != '"') {
			if (q[n] == '\\' && q[n + 1])
				n++;
			n++;
		}
		if (!q[n])
			return NULL;
		if (n >= outsz)
			n = outsz - 1;
		memcpy(out, q, n);
		out[n] = '\0';
		return q + n + 1;
	}
	return NULL;
}

static bool json_str(const char *line, const char *key, char *out, size_t outsz)
{
	return json_next_str(line, key, out, outsz) != NULL;
}

/* Is there a "key": "value" with exactly this value anywhere in line? */
static bool json_match(const char *line, const char *key, const char *value)
{
	char got[256];
	const char *p = line;

	while ((p = json_next_str(p, key, got, sizeof(got))))
		if (!strcmp(got, value))
			return true;
	return false;
}

static bool json_has_key(const char *line, const char *key)
{
	char pat[64];

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	return strstr(line, pat) != NULL;
}

/* ---- QMP ---------------------------------------------------------------- */

struct waiter {
	const char *dev_id;	/* DEVICE_DELETED to wait for, or NULL */
	bool deleted;
};

static void check_event(const char *line, struct waiter *w)
{
	char ev[64], dev[256];

	if (!w || !w->dev_id || !json_str(line, "event", ev, sizeof(ev)))
		return;
	if (strcmp(ev, "DEVICE_DELETED"))
		return;
	if (json_str(line, "device", dev, sizeof(dev)) && !strcmp(dev, w->dev_id))
		w->deleted = true;
}

/*
 * Send cmd (a JSON object; text after its opening brace follows our id) and
 * return the reply line with that id, or NULL on timeout.  Events and other
 * lines are skipped, after w had a look at them.
 */
static char *qmp_call(const char *body, double deadline, struct waiter *w)
{
	char id[64];
	struct sbuf cmd = { 0 };

	snprintf(id, sizeof(id), "gru-qmp-%d-%u", (int)getpid(), ++seq);
	sb_puts(&cmd, "{\"id\":\"");
	sb_puts(&cmd, id);
	sb_puts(&cmd, "\",");
	sb_puts(&cmd, body);
	sb_puts(&cmd, "}\n");
	if (verbose)
		fprintf(stderr, "%s: -> %s", prog, cmd.s);
	tty_write(cmd.s, cmd.len);
	free(cmd.s);

	for (;;) {
		char *line = tty_line(deadline);

		if (!line)
			return NULL;
		check_event(line, w);
		if (json_match(line, "id", id))
			return line;
		free(line);
	}
}

static bool is_error(const char *reply, char *cls, size_t clssz)
{
	if (!json_has_key(reply, "error"))
		return false;
	if (!json_str(reply, "class", cls, clssz))
		snprintf(cls, clssz, "?");
	return true;
}

static void negotiate(double timeout)
{
	static const char reset[] = "\xff\n";
	char cls[64];
	char *r = NULL;
	int i;

	/*
	 * A run killed halfway through a command leaves a partial object in
	 * QEMU's parser; 0xff (never valid UTF-8) makes its lexer start
	 * over.  QEMU answers with a parse error that has no id: skipped.
	 */
	tty_write(reset, sizeof(reset) - 1);
	for (i = 0; i < 3 && !r; i++)
		r = qmp_call("\"execute\":\"qmp_capabilities\"",
			     now() + (timeout < 5 ? timeout : 5), NULL);
	if (!r)
		die(1, "no reply to qmp_capabilities on the QMP port: is the guest's ttyS3 wired to QMP (scripts/guest-run.sh) and its relay running?");
	if (is_error(r, cls, sizeof(cls)) && strcmp(cls, "CommandNotFound"))
		die(1, "qmp_capabilities failed: %s", r);
	/* CommandNotFound: negotiated by an earlier run of ours, fine */
	free(r);
}

/* ---- building commands -------------------------------------------------- */

static bool plain_number(const char *v)
{
	char *end;

	if (!*v)
		return false;
	errno = 0;
	strtoll(v, &end, 10);
	return !errno && !*end && (v[0] != '0' || !v[1]) &&
	       !(v[0] == '-' && v[1] == '0');
}

/* key=value as a JSON member; values keep their type where QMP wants it */
static void add_member(struct sbuf *b, const char *key, size_t klen,
		       const char *val, bool typed)
{
	sb_json_str(b, key, klen);
	sb_puts(b, ":");
	if (typed && (!strcmp(val, "on") || !strcmp(val, "true")))
		sb_puts(b, "true");
	else if (typed && (!strcmp(val, "off") || !strcmp(val, "false")))
		sb_puts(b, "false");
	else if (typed && plain_number(val))
		sb_puts(b, val);
	else
		sb_json_str(b, val, strlen(val));
}

/* "a=1,b=2" (or several words) into members; a bare first word is key0 */
static void add_kv_list(struct sbuf *b, char **words, int n, const char *key0,
			bool typed)
{
	bool first = true;
	int i;

	for (i = 0; i < n; i++) {
		char *s = words[i];

		while (*s) {
			size_t len = strcspn(s, ",");
			char *eq = memchr(s, '=', len);
			char save = s[len];

			s[len] = '\0';
			if (len) {
				if (!first)
					sb_puts(b, ",");
				if (eq) {
					bool t = typed && strncmp(s, "id=", 3) &&
						 strncmp(s, "bus=", 4) &&
						 strncmp(s, "driver=", 7);

					add_member(b, s, eq - s, eq + 1, t);
				} else if (first && key0) {
					add_member(b, key0, strlen(key0), s, false);
				} else {
					die(2, "'%s' is not key=value", s);
				}
				first = false;
			}
			s[len] = save;
			s += len + (save ? 1 : 0);
		}
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: %s [-d TTY] [-t SECONDS] [-v] device_del ID\n"
		"       %s [-d TTY] [-t SECONDS] [-v] device_add DRIVER[,key=value...]\n"
		"       %s [-d TTY] [-t SECONDS] [-v] raw 'JSON'\n"
		"       %s [-d TTY] [-t SECONDS] [-v] COMMAND [key=value...]\n"
		"  -d TTY      QMP serial port (default " DEFAULT_TTY ")\n"
		"  -t SECONDS  how long to wait for a reply or event (default 30)\n"
		"  -v          log the conversation on stderr\n",
		prog, prog, prog, prog);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *tty = DEFAULT_TTY;
	struct waiter w = { 0 };
	struct sbuf body = { 0 };
	double timeout = 30, deadline, t0;
	char cls[64];
	char *cmd, *reply;
	int opt;

	while ((opt = getopt(argc, argv, "+d:t:vh")) != -1) {
		switch (opt) {
		case 'd':
			tty = optarg;
			break;
		case 't':
			timeout = strtod(optarg, NULL);
			if (timeout <= 0)
				die(2, "-t needs a positive number of seconds");
			break;
		case 'v':
			verbose = true;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();
	cmd = argv[optind++];

	if (!strcmp(cmd, "device_del")) {
		if (argc - optind != 1)
			usage();
		w.dev_id = argv[optind];
		sb_puts(&body, "\"execute\":\"device_del\",\"arguments\":{");
		add_member(&body, "id", 2, w.dev_id, false);
		sb_puts(&body, "}");
	} else if (!strcmp(cmd, "device_add")) {
		if (argc - optind < 1)
			usage();
		sb_puts(&body, "\"execute\":\"device_add\",\"arguments\":{");
		add_kv_list(&body, argv + optind, argc - optind, "driver", true);
		sb_puts(&body, "}");
	} else if (!strcmp(cmd, "raw")) {
		const char *j;
		size_t n;

		if (argc - optind != 1)
			usage();
		j = argv[optind];
		while (*j == ' ' || *j == '\t' || *j == '\n')
			j++;
		n = strlen(j);
		while (n && strchr(" \t\r\n", j[n - 1]))
			n--;
		if (n < 2 || j[0] != '{' || j[n - 1] != '}')
			die(2, "raw: '%s' is not a JSON object", argv[optind]);
		/* our id goes first: the object must not have an "id" of its own */
		sb_add(&body, j + 1, n - 2);
	} else {
		sb_puts(&body, "\"execute\":");
		sb_json_str(&body, cmd, strlen(cmd));
		if (argc > optind) {
			sb_puts(&body, ",\"arguments\":{");
			add_kv_list(&body, argv + optind, argc - optind, NULL, false);
			sb_puts(&body, "}");
		}
	}

	tty_open(tty);
	tty_drain();
	negotiate(timeout);

	t0 = now();
	deadline = t0 + timeout;
	reply = qmp_call(body.s, deadline, &w);
	if (!reply)
		die(1, "no reply to %s within %.0f s", cmd, timeout);
	printf("%s\n", reply);
	fflush(stdout);
	if (is_error(reply, cls, sizeof(cls))) {
		fprintf(stderr, "%s: %s failed (%s)\n", prog, cmd, cls);
		return 1;
	}

	if (w.dev_id) {
		while (!w.deleted) {
			char *line = tty_line(deadline);

			if (!line)
				die(1, "device_del %s: no DEVICE_DELETED within %.0f s (did the guest eject it?)",
				    w.dev_id, timeout);
			check_event(line, &w);
			free(line);
		}
		fprintf(stderr, "%s: DEVICE_DELETED %s after %.2f s\n", prog,
			w.dev_id, now() - t0);
	}
	free(reply);
	free(body.s);
	close(tty_fd);
	return 0;
}
