"""Release artifacts into canonical tarballs: formats, stripping, refusals (no server)."""
import io
import os
import tarfile
import zipfile

import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils.app_artifact import ArtifactError, kind_of, normalize


def members(path):
    with tarfile.open(path, 'r:gz') as archive:
        return dict((m.name, (m.type, m.mode, archive.extractfile(m).read() if m.isfile() else m.linkname)) for m in archive.getmembers())


def make_tar(path, files, top='shop-1.10.0'):
    with tarfile.open(path, 'w:gz') as archive:
        for name, data in files.items():
            full = '%s/%s' % (top, name) if top else name
            if data is None:
                info = tarfile.TarInfo(full)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                archive.addfile(info)
                continue
            info = tarfile.TarInfo(full)
            info.size = len(data)
            info.mode = 0o4755 if name.endswith('.sh') else 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def test_tarball_with_one_top_level_directory_is_stripped(tmp_path):
    src = make_tar(str(tmp_path / 'shop-1.10.0.tar.gz'), {'': None, 'server.py': b'print(1)', 'bin/run.sh': b'#!/bin/sh'})
    dest = str(tmp_path / 'out.tar.gz')
    result = normalize(src, dest)
    assert result['changed'] and result['kind'] == 'tar.gz' and result['stripped'] == 'shop-1.10.0' and result['files'] == 2
    got = members(dest)
    assert got['server.py'][2] == b'print(1)' and 'bin/run.sh' in got
    assert got['bin/run.sh'][1] == 0o755   # no set-uid bit survives
    again = normalize(src, dest)
    assert again['changed'] is False and again['sha256'] == result['sha256']


def test_several_top_level_entries_are_kept_as_they_are(tmp_path):
    src = make_tar(str(tmp_path / 'a.tgz'), {'app.py': b'x', 'lib/util.py': b'y'}, top=None)
    dest = str(tmp_path / 'out.tar.gz')
    assert normalize(src, dest)['stripped'] is None and sorted(members(dest)) == ['app.py', 'lib/util.py']


def test_zip_and_directory(tmp_path):
    src = str(tmp_path / 'r.zip')
    with zipfile.ZipFile(src, 'w') as archive:
        archive.writestr('release/', '')
        archive.writestr('release/app.py', 'print(2)')
    dest = str(tmp_path / 'z.tar.gz')
    assert normalize(src, dest)['stripped'] == 'release' and members(dest)['app.py'][2] == b'print(2)'
    tree = tmp_path / 'tree'
    (tree / 'pkg').mkdir(parents=True)
    (tree / 'app.py').write_bytes(b'main')
    (tree / 'pkg' / 'mod.py').write_bytes(b'mod')
    shared = tmp_path / 'shared'
    shared.mkdir()
    (shared / 'lib.py').write_bytes(b'lib')
    os.symlink(str(shared), str(tree / 'linked'))   # a link is followed, as the sample's releases use it
    result = normalize(str(tree), str(tmp_path / 'd.tar.gz'))
    assert result['kind'] == 'directory' and result['stripped'] is None and result['files'] == 3
    assert members(str(tmp_path / 'd.tar.gz'))['linked/lib.py'][2] == b'lib'


@pytest.mark.parametrize('name,needle', [('/etc/passwd', 'absolute path'), ('a/../../x', 'climbs out')])
def test_members_that_could_escape_are_refused_and_nothing_is_written(tmp_path, name, needle):
    src = str(tmp_path / 'bad.tar.gz')
    with tarfile.open(src, 'w:gz') as archive:
        info = tarfile.TarInfo(name)
        info.size = 1
        archive.addfile(info, io.BytesIO(b'x'))
    dest = str(tmp_path / 'out.tar.gz')
    with pytest.raises(ArtifactError, match=needle):
        normalize(src, dest)
    assert not os.path.exists(dest)


@pytest.mark.parametrize('target,ok', [('../lib/x.py', True), ('../../etc/passwd', False), ('/etc/passwd', False)])
def test_links_must_stay_inside(tmp_path, target, ok):
    src = str(tmp_path / 'l.tar.gz')
    with tarfile.open(src, 'w:gz') as archive:
        for name in ('r/lib/x.py', 'r/bin/app.py'):
            info = tarfile.TarInfo(name)
            info.size = 1
            archive.addfile(info, io.BytesIO(b'x'))
        info = tarfile.TarInfo('r/bin/link')
        info.type = tarfile.SYMTYPE
        info.linkname = target
        archive.addfile(info)
    if ok:
        normalize(src, str(tmp_path / 'o.tar.gz'))
        assert members(str(tmp_path / 'o.tar.gz'))['bin/link'][2] == target
    else:
        with pytest.raises(ArtifactError, match='link bin/link points'):
            normalize(src, str(tmp_path / 'o.tar.gz'))


def test_unusable_artifacts(tmp_path):
    with pytest.raises(ArtifactError, match='does not exist'):
        kind_of(str(tmp_path / 'missing.tar.gz'))
    (tmp_path / 'a.rar').write_bytes(b'x')
    with pytest.raises(ArtifactError, match='neither a directory nor'):
        kind_of(str(tmp_path / 'a.rar'))
    (tmp_path / 'broken.tar.gz').write_bytes(b'not gzip')
    with pytest.raises(ArtifactError, match='not a readable .tar.gz'):
        normalize(str(tmp_path / 'broken.tar.gz'), str(tmp_path / 'o'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ArtifactError, match='empty'):
        normalize(str(tmp_path / 'empty'), str(tmp_path / 'o'))


def test_check_mode_writes_nothing(tmp_path):
    src = make_tar(str(tmp_path / 's.tgz'), {'app.py': b'x'})
    dest = str(tmp_path / 'out.tar.gz')
    assert normalize(src, dest, check_mode=True)['changed'] is True and not os.path.exists(dest)
