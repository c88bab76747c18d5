"""A FUSE filesystem whose statfs never answers: a real stuck mount (as a dead NFS server gives).

Usage: python3 stuck_fs.py MOUNTPOINT   (runs in the foreground until killed)
"""
import errno
import stat
import sys
import time

from fusepy import FUSE, FuseOSError, Operations


class Stuck(Operations):
    def getattr(self, path, fh=None):
        if path == "/":
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2)
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return [".", ".."]

    def statfs(self, path):
        time.sleep(3600)
        return {}


if __name__ == "__main__":
    FUSE(Stuck(), sys.argv[1], foreground=True, nothreads=False, fsname="stuckfs")
