# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A release artifact turned into one canonical tarball on the controller (no Ansible import).

The app contract accepts a ``.tar.gz``/``.tgz``/``.zip`` file or a directory.  :func:`normalize` reads any of
them, strips one top-level directory when everything sits inside one, refuses what could escape the release
directory when unpacked (absolute paths, ``..``, links that point outside, device files), and writes a gzip'd
tar with sorted entries, owner root and no set-id bits.  App hosts then need only ``tar`` and never see the
original format; the canonical form is deterministic, so an unchanged artifact gives the same bytes.
Links inside a directory artifact are followed (the file they point at is packed), as ``tar -h`` does.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import calendar
import gzip
import hashlib
import io
import os
import posixpath
import stat
import tarfile
import zipfile

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError

ARCHIVE_SUFFIXES = ('.tar.gz', '.tgz', '.zip')
MODE_BITS = 0o777   # no set-id or sticky bits in a release


class ArtifactError(ZdtError):
    """An artifact that is not usable as a release."""


class Entry(object):
    """One member of a release: a directory, a file (with its bytes) or a symbolic link (with its target)."""

    def __init__(self, path, kind, mode, mtime, data=b'', target=None):
        self.path = path
        self.kind = kind
        self.mode = mode & MODE_BITS
        self.mtime = int(mtime)
        self.data = data
        self.target = target


def kind_of(path):
    """'directory', 'tar.gz' or 'zip'; ArtifactError for anything else."""
    if os.path.isdir(path):
        return 'directory'
    if not os.path.isfile(path):
        raise ArtifactError('artifact %s does not exist' % path)
    lower = path.lower()
    if lower.endswith(('.tar.gz', '.tgz')):
        return 'tar.gz'
    if lower.endswith('.zip'):
        return 'zip'
    raise ArtifactError('artifact %s is neither a directory nor a .tar.gz, .tgz or .zip file' % path)


def clean_path(name, source):
    """The member's path relative to the release root; ArtifactError when it could escape it."""
    text = name.replace('\\', '/')
    if text.startswith('/') or (len(text) > 1 and text[1] == ':'):
        raise ArtifactError('%s: member %r has an absolute path' % (source, name))
    parts = [p for p in text.split('/') if p not in ('', '.')]
    if any(p == '..' for p in parts):
        raise ArtifactError('%s: member %r climbs out of the release with ..' % (source, name))
    return '/'.join(parts)


def _check_link(path, target, source):
    if target.startswith('/'):
        raise ArtifactError('%s: link %s points to the absolute path %s' % (source, path, target))
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == '..' or resolved.startswith('../'):
        raise ArtifactError('%s: link %s points outside the release (%s)' % (source, path, target))


def read_tar(src):
    entries = []
    try:
        with tarfile.open(src, 'r:gz') as archive:
            for member in archive.getmembers():
                path = clean_path(member.name, src)
                if not path:
                    continue
                if member.isdir():
                    entries.append(Entry(path, 'dir', member.mode, member.mtime))
                elif member.issym():
                    entries.append(Entry(path, 'link', 0o777, member.mtime, target=member.linkname))
                elif member.isfile() or member.islnk():
                    handle = archive.extractfile(member)   # a hard link reads as the file it links to
                    entries.append(Entry(path, 'file', member.mode, member.mtime, handle.read() if handle else b''))
                else:
                    raise ArtifactError('%s: member %r is a device, fifo or other special file' % (src, member.name))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArtifactError('%s is not a readable .tar.gz: %s' % (src, exc))
    return entries


def read_zip(src):
    entries = []
    try:
        with zipfile.ZipFile(src) as archive:
            for info in archive.infolist():
                path = clean_path(info.filename, src)
                if not path:
                    continue
                mode = (info.external_attr >> 16) & 0xFFFF
                mtime = 0
                if info.date_time[0] >= 1980:
                    mtime = calendar.timegm(info.date_time + (0, 0, -1))
                if info.filename.endswith('/') or stat.S_ISDIR(mode):
                    entries.append(Entry(path, 'dir', mode & MODE_BITS or 0o755, mtime))
                elif stat.S_ISLNK(mode):
                    target = archive.read(info).decode('utf-8')
                    entries.append(Entry(path, 'link', 0o777, mtime, target=target))
                else:
                    entries.append(Entry(path, 'file', mode & MODE_BITS or 0o644, mtime, archive.read(info)))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArtifactError('%s is not a readable .zip: %s' % (src, exc))
    return entries


def read_directory(src):
    entries = []
    root = os.path.realpath(src)
    seen = set()
    for top, dirs, files in os.walk(src, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            raise ArtifactError('%s: directory links form a cycle at %s' % (src, top))
        seen.add(real)
        dirs.sort()
        rel = os.path.relpath(top, src)
        if rel != '.':
            info = os.stat(top)
            entries.append(Entry(clean_path(rel, src), 'dir', info.st_mode, info.st_mtime))
        for name in sorted(files):
            full = os.path.join(top, name)
            try:
                info = os.stat(full)   # follows links
            except OSError as exc:
                raise ArtifactError('%s: %s cannot be read (a dangling link?): %s' % (src, full, exc))
            if not stat.S_ISREG(info.st_mode):
                raise ArtifactError('%s: %s is a device, fifo or other special file' % (src, full))
            with open(full, 'rb') as handle:
                entries.append(Entry(clean_path(os.path.join(rel, name), src), 'file', info.st_mode, info.st_mtime, handle.read()))
    if not entries and not os.listdir(root):
        raise ArtifactError('artifact directory %s is empty' % src)
    return entries


def strip_top(entries):
    """Entries without their one top-level directory (when every entry is inside it) and its name, else (entries, None)."""
    tops = set(e.path.split('/', 1)[0] for e in entries)
    if len(tops) != 1:
        return entries, None
    top = tops.pop()
    inside = [e for e in entries if e.path != top]
    if not inside or any(e.path == top and e.kind != 'dir' for e in entries):
        return entries, None
    stripped = []
    for entry in inside:
        entry.path = entry.path.split('/', 1)[1]
        stripped.append(entry)
    return stripped, top


def canonical_tarball(entries):
    """The gzip'd tar bytes of ``entries``: sorted, owner root, deterministic (gzip header without a time)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.PAX_FORMAT) as archive:
        for entry in sorted(entries, key=lambda e: e.path):
            info = tarfile.TarInfo(entry.path)
            info.mtime = entry.mtime
            info.mode = entry.mode
            info.uid = info.gid = 0
            info.uname = info.gname = 'root'
            if entry.kind == 'dir':
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif entry.kind == 'link':
                info.type = tarfile.SYMTYPE
                info.linkname = entry.target
                archive.addfile(info)
            else:
                info.size = len(entry.data)
                archive.addfile(info, io.BytesIO(entry.data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode='wb', mtime=0) as handle:
        handle.write(raw.getvalue())
    return out.getvalue()


def normalize(src, dest, check_mode=False):
    """Read the artifact ``src`` and write its canonical tarball to ``dest`` (unless it holds those bytes already)."""
    kind = kind_of(src)
    entries = {'directory': read_directory, 'tar.gz': read_tar, 'zip': read_zip}[kind](src)
    paths = [e.path for e in entries]
    if len(set(paths)) != len(paths):
        duplicate = sorted(p for p in set(paths) if paths.count(p) > 1)[0]
        raise ArtifactError('%s: %s appears more than once' % (src, duplicate))
    entries, stripped = strip_top(entries) if kind != 'directory' else (entries, None)
    for entry in entries:
        if entry.kind == 'link':
            _check_link(entry.path, entry.target, src)   # against the release root, after the strip
    if not any(e.kind == 'file' for e in entries):
        raise ArtifactError('%s holds no file' % src)
    data = canonical_tarball(entries)
    digest = hashlib.sha256(data).hexdigest()
    changed = True
    if os.path.isfile(dest):
        with open(dest, 'rb') as handle:
            changed = hashlib.sha256(handle.read()).hexdigest() != digest
    if changed and not check_mode:
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        tmp = '%s.%d.tmp' % (dest, os.getpid())
        with open(tmp, 'wb') as handle:
            handle.write(data)
        os.replace(tmp, dest)
    return dict(changed=changed, kind=kind, stripped=stripped, files=sum(1 for e in entries if e.kind == 'file'), sha256=digest)
