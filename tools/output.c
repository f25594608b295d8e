/*
 * output.c — what every listing command shares: name filters (repeatable
 * -f, '^GLOB' and -X excluding, varnishstat's rule), the sort keys, and
 * output that never hides a failure: stdout checked before exit, and -o
 * FILE written to a temporary file in the same directory, then renamed,
 * so a reader (node_exporter's textfile collector) sees the old file or
 * the new one, never half of one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmstat_i.h"
#include "tools_i.h"

bool tool_filter_add(struct tool_filter *f, const char *glob, bool exclude)
{
	if (!exclude && glob[0] == '^') {
		exclude = true;
		glob++;
	}
	if (exclude) {
		if (f->nexc >= TOOL_FILTERS_MAX)
			return false;
		f->exc[f->nexc++] = glob;
	} else {
		if (f->ninc >= TOOL_FILTERS_MAX)
			return false;
		f->inc[f->ninc++] = glob;
	}
	return true;
}

bool tool_filter_match(const struct tool_filter *f, const char *name,
		       size_t len)
{
	bool in = f->ninc == 0;

	for (int i = 0; i < f->ninc && !in; i++)
		in = shmstat__glob(f->inc[i], name, len);
	for (int i = 0; i < f->nexc && in; i++)
		in = !shmstat__glob(f->exc[i], name, len);
	return in;
}

const char *tool_filter_simple(const struct tool_filter *f)
{
	return f->ninc == 1 && f->nexc == 0 ? f->inc[0] : NULL;
}

bool tool_sort_parse(const char *s, enum tool_sort *out)
{
	static const char *const keys[] = { "name", "value", "rate" };

	for (int i = 0; i < 3; i++)
		if (strcmp(s, keys[i]) == 0) {
			*out = (enum tool_sort)i;
			return true;
		}
	return false;
}

struct collect {
	const struct tool_filter *f;
	shmstat_stat_t *v;
	size_t n, cap;
};

static int collect_one(const shmstat_stat_t *st, void *priv)
{
	struct collect *c = priv;
	char d[SHMSTAT_NAME_MAX + 1];

	/* Buckets are shown with their histogram; names in their
	 * canonical form (labels as name{k="v"}). */
	if (st->kind == SHMSTAT_KIND_HBUCKET)
		return 0;
	size_t dl = shmstat__key_display(st->name, st->name_len, d);
	if (!tool_filter_match(c->f, d, dl))
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 256;
		shmstat_stat_t *v = realloc(c->v, cap * sizeof(*v));
		if (!v)
			return SHMSTAT_ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n] = *st;
	memcpy(c->v[c->n].name, d, dl + 1);
	c->v[c->n++].name_len = (uint32_t)dl;
	return 0;
}

int tool_collect(shmstat_t *h, const struct tool_filter *f,
		 shmstat_stat_t **out, size_t *n)
{
	struct collect c = { .f = f };
	int rc = shmstat_iter(h, tool_filter_simple(f), collect_one, &c);

	if (rc < 0) {
		free(c.v);
		return rc;
	}
	*out = c.v;
	*n = c.n;
	return 0;
}

int tool_stdout_check(void)
{
	static bool said; /* once: the live view checks every frame */

	if (fflush(stdout) == 0 && !ferror(stdout))
		return TOOL_OK;
	if (!said)
		tool_err("error writing the output: %s",
			 errno ? strerror(errno) : "write failed");
	said = true;
	return TOOL_FAILED;
}

/*
 * -o FILE only ever replaces a regular file: a device (/dev/full), a FIFO
 * or a socket at FILE is refused, never turned into a file. A symlink is
 * followed: its target, when that is a regular file or absent, is the file
 * replaced (in the target's directory), and the link stays. Returns the
 * path to write (path itself, or the link's target in buf), or NULL after
 * saying why.
 */
static const char *out_target(const char *path, char *buf, size_t len)
{
	struct stat sb;
	const char *res = path;

	buf[0] = '\0';
	if (lstat(path, &sb) < 0)
		return path; /* absent: created; other errors show at mkstemp */
	if (S_ISLNK(sb.st_mode)) {
		char *real = realpath(path, NULL);
		if (!real) {
			if (errno != ENOENT) {
				tool_err("-o %s: cannot follow the symlink: %s",
					 path, strerror(errno));
				return NULL;
			}
			tool_err("-o %s is a symlink to nothing (dangling); "
				 "nothing was written",
				 path);
			return NULL;
		}
		int n = snprintf(buf, len, "%s", real);
		free(real);
		if (n < 0 || (size_t)n >= len) {
			tool_err("-o: path too long: %s", path);
			return NULL;
		}
		res = buf;
		if (stat(buf, &sb) < 0)
			return buf;
	}
	if (S_ISREG(sb.st_mode))
		return res;
	tool_err("-o %s is %s, not a regular file: refused (nothing was "
		 "written; use -o - or no -o for standard output)",
		 path,
		 S_ISDIR(sb.st_mode)	? "a directory"
		 : S_ISCHR(sb.st_mode)	? "a character device"
		 : S_ISBLK(sb.st_mode)	? "a block device"
		 : S_ISFIFO(sb.st_mode) ? "a FIFO"
		 : S_ISSOCK(sb.st_mode) ? "a socket"
					: "not a file");
	return NULL;
}

int tool_out_open(struct tool_out *o, const char *path)
{
	o->path = NULL;
	o->f = stdout;
	o->tmp[0] = '\0';
	o->target[0] = '\0';
	if (!path || strcmp(path, "-") == 0)
		return TOOL_OK;
	o->path = path;
	path = out_target(path, o->target, sizeof(o->target));
	if (!path)
		return TOOL_USAGE;
	o->dest = path;
	/* The temporary file's name starts with '.' and does not end in
	 * .prom, so the textfile collector never reads it. */
	const char *slash = strrchr(path, '/');
	int dlen = slash ? (int)(slash - path + 1) : 0;
	if ((size_t)snprintf(o->tmp, sizeof(o->tmp), "%.*s.%s.XXXXXX", dlen,
			     path, slash ? slash + 1 : path) >= sizeof(o->tmp)) {
		tool_err("-o: path too long: %s", path);
		return TOOL_USAGE;
	}
	int fd = mkstemp(o->tmp);
	if (fd < 0) {
		tool_err("-o %s: cannot create a file in its directory: %s", path,
			 strerror(errno));
		o->tmp[0] = '\0';
		return TOOL_FAILED;
	}
	/* mkstemp makes it 0600; a textfile is read by another user. */
	mode_t um = umask(0);
	umask(um);
	if (fchmod(fd, 0666 & ~um) < 0 || !(o->f = fdopen(fd, "w"))) {
		tool_err("-o %s: %s", path, strerror(errno));
		close(fd);
		unlink(o->tmp);
		o->f = stdout;
		return TOOL_FAILED;
	}
	return TOOL_OK;
}

int tool_out_close(struct tool_out *o, bool ok)
{
	if (!o->path)
		return tool_stdout_check();
	int err = 0;
	if (fflush(o->f) != 0 || ferror(o->f) || fsync(fileno(o->f)) < 0)
		err = errno ? errno : EIO;
	if (fclose(o->f) != 0 && !err)
		err = errno ? errno : EIO;
	o->f = NULL;
	/* Checked again just before: nothing but a regular file is replaced. */
	if (ok && !err) {
		char again[sizeof(o->target)] = "";
		const char *t = out_target(o->path, again, sizeof(again));
		if (!t || strcmp(t, o->dest) != 0) {
			if (t)
				tool_err("-o %s changed while it was written",
					 o->path);
			unlink(o->tmp);
			return t ? TOOL_FAILED : TOOL_USAGE;
		}
		if (rename(o->tmp, o->dest) < 0)
			err = errno;
	}
	if (!ok || err) {
		unlink(o->tmp);
		if (err)
			tool_err("-o %s: %s (the file was not changed)", o->path,
				 strerror(err));
		return err ? TOOL_FAILED : TOOL_OK;
	}
	return TOOL_OK;
}

/* A column per byte that does not continue a UTF-8 character. */
static bool starts_char(char c)
{
	return ((unsigned char)c & 0xc0) != 0x80;
}

void tool_pad(char *buf, size_t len, const char *s, size_t n, int width,
	      bool cut)
{
	size_t o = 0;
	int cols = 0;

	if (!len)
		return;
	if (cut && width > 3) {
		int all = 0;
		for (size_t i = 0; i < n; i++)
			all += starts_char(s[i]);
		if (all > width) {
			/* The first width - 3 characters, then "...". */
			size_t i = 0;
			for (; i < n; i++)
				if (starts_char(s[i]) && ++cols > width - 3)
					break;
			snprintf(buf, len, "%.*s...", (int)i, s);
			return;
		}
	}
	for (size_t i = 0; i < n && o + 1 < len; i++) {
		cols += starts_char(s[i]);
		buf[o++] = s[i];
	}
	while (cols++ < width && o + 1 < len)
		buf[o++] = ' ';
	buf[o] = '\0';
}
