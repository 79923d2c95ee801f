/* File-system chores shared by the readers, the checkpoint folder and the
 * command (internal to loom). */
#ifndef LOOM_IO_FS_H
#define LOOM_IO_FS_H

/* Whether path is a folder / a regular file (following links). */
int loom_is_dir(const char *path);
int loom_is_file(const char *path);
/* mkdir -p: path and every missing parent, mode 0755. 0, or -1 with errno set. */
int loom_mkdirs(const char *path);

#endif
