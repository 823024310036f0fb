"""The app contract: defaults, refusals naming the field, artifact sources and cache names (no server)."""
import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.zdt.bluegreen.plugins.filter.app_contract import artifact_source as artifact_filter
from ansible_collections.zdt.bluegreen.plugins.module_utils.app_contract import artifact_source, validate_app
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import SpecError

APP = {'name': 'shop', 'artifact': 'https://releases.example.com/shop-1.10.0.tar.gz', 'command': 'venv/bin/gunicorn -b $ZDT_BIND:$ZDT_PORT app:app'}


def test_defaults():
    app = validate_app(dict(APP))
    assert app['user'] == 'zdt-shop' and app['base_dir'] == '/opt/shop' and app['stop_timeout'] == 30
    assert app['health'] == {'path': '/health', 'status': [200], 'timeout': 60}
    assert app['version'] == {} and app['env'] == {} and app['secret_env'] == {} and app['install'] == ''
    assert 'artifact' not in app and 'checksum' not in app   # read only where a version is deployed (artifact_source)


def test_everything_given():
    app = validate_app(dict(APP, install='python3 -m venv venv &&\nvenv/bin/pip install -r r.txt',
                            env={'LOG_LEVEL': 'info', 'WORKERS': 4, 'DEBUG': False}, secret_env={'DB_PASSWORD': 'p"w$1'},
                            user='shop', base_dir='/srv/shop/', stop_timeout=12.5,
                            health={'path': '/status/ready', 'status': 204, 'timeout': 5}, version={'json': 'build.version'}))
    assert app['env'] == {'DEBUG': 'false', 'LOG_LEVEL': 'info', 'WORKERS': '4'} and app['secret_env'] == {'DB_PASSWORD': 'p"w$1'}
    assert app['base_dir'] == '/srv/shop' and app['stop_timeout'] == 12.5 and app['health']['status'] == [204]


@pytest.mark.parametrize('change,field,needle', [
    ({'name': 'Shop!'}, 'zdt_app.name', 'a-z, 0-9'),
    ({'command': ''}, 'zdt_app.command', 'required'),
    ({'command': 'a\nb'}, 'zdt_app.command', 'one line'),
    ({'user': 'Root User'}, 'zdt_app.user', 'user name'),
    ({'base_dir': 'opt/shop'}, 'zdt_app.base_dir', 'absolute'),
    ({'base_dir': '/opt/../etc'}, 'zdt_app.base_dir', 'absolute path without'),
    ({'stop_timeout': 0}, 'zdt_app.stop_timeout', 'greater than 0'),
    ({'health': {'path': 'health'}}, 'zdt_app.health.path', 'starting with'),
    ({'health': {'status': 'ok'}}, 'zdt_app.health.status', 'status code'),
    ({'health': {'url': '/x'}}, 'zdt_app.health.url', 'unknown key'),
    ({'health': {'timeout': -1}}, 'zdt_app.health.timeout', 'greater than 0'),
    ({'version': {'xml': 'v'}}, 'zdt_app.version', '{header: NAME}'),
    ({'env': {'1BAD': 'x'}}, 'zdt_app.env.1BAD', 'invalid environment variable name'),
    ({'env': {'ZDT_PORT': '1'}}, 'zdt_app.env.ZDT_PORT', 'set by the collection'),
    ({'env': {'A': ['x']}}, 'zdt_app.env.A', 'string or a number'),
    ({'env': {'A': '1'}, 'secret_env': {'A': '2'}}, 'zdt_app.secret_env.A', 'also in zdt_app.env'),
    ({'colour': 'blue'}, 'zdt_app.colour', 'unknown key'),
])
def test_invalid_fields_are_named(change, field, needle):
    with pytest.raises(SpecError) as err:
        validate_app(dict(APP, **change))
    assert err.value.field == field and needle in str(err.value)


def test_a_missing_artifact_is_named():
    app = dict(APP)
    del app['artifact']
    with pytest.raises(SpecError) as err:
        validate_app(app)
    assert err.value.field == 'zdt_app.artifact'


@pytest.mark.parametrize('checksum,needle', [('md5:abc', 'sha256:'), ('sha256:xyz', '64 hex')])
def test_bad_checksums_are_refused(checksum, needle):
    with pytest.raises(SpecError) as err:
        artifact_source(APP['artifact'], 'shop', '1', checksum=checksum, isdir=lambda p: False)
    assert err.value.field == 'zdt_app.checksum' and needle in str(err.value)


def test_a_bad_secret_is_never_quoted():
    with pytest.raises(SpecError) as err:
        validate_app(dict(APP, secret_env={'TOKEN': 'hunter2\nmore'}))
    assert 'hunter2' not in str(err.value) and 'value not shown' in str(err.value)


@pytest.mark.parametrize('artifact,kind,url,cache', [
    ('https://r.example.com/shop-1.10.0.tar.gz?sig=1', 'url', 'https://r.example.com/shop-1.10.0.tar.gz?sig=1', 'shop-1.10.0-shop-1.10.0.tar.gz'),
    ('http://10.0.0.9/a/b/release.zip', 'url', 'http://10.0.0.9/a/b/release.zip', 'shop-1.10.0-release.zip'),
    ('file:///srv/art/shop.tgz', 'file', 'file:///srv/art/shop.tgz', 'shop-1.10.0-shop.tgz'),
    ('/srv/art/shop.tgz', 'file', 'file:///srv/art/shop.tgz', 'shop-1.10.0-shop.tgz'),
])
def test_artifact_sources_and_cache_names(artifact, kind, url, cache):
    source = artifact_source(artifact, 'shop', '1.10.0', isdir=lambda p: False)
    assert (source['kind'], source['url'], source['cache_name']) == (kind, url, cache)


def test_a_directory_artifact(tmp_path):
    source = artifact_source(str(tmp_path), 'shop', '2', isdir=lambda p: p == str(tmp_path))
    assert source == {'kind': 'directory', 'url': None, 'path': str(tmp_path), 'cache_name': 'shop-2.tar.gz', 'checksum': ''}
    with pytest.raises(SpecError, match='a checksum needs an artifact file'):
        artifact_source(str(tmp_path), 'shop', '2', checksum='sha256:' + '0' * 64, isdir=lambda p: True)
    # the filter looks at the controller's file system itself
    assert artifact_filter({'artifact': str(tmp_path), 'name': 'shop'}, '2')['kind'] == 'directory'
    with pytest.raises(AnsibleFilterError, match='must name a .tar.gz'):
        artifact_filter({'artifact': str(tmp_path / 'missing.rar'), 'name': 'shop'}, '2')
