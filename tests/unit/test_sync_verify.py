"""The verifier's row hash (no server)."""
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_verify import norm_expr, row_hash


def test_verify_hash_renders_null_distinctly_and_strings_as_hex():
    assert norm_expr('`c`', 'varchar') == "IF(`c` IS NULL, 'N', CONCAT('V', HEX(CONVERT(`c` USING utf8mb4))))"
    h = row_hash('`id`', 'int', ['`a`'], ['varchar'])
    assert h.startswith("CAST(CONV(LEFT(MD5(CONCAT_WS('|', ") and "CAST(`id` AS CHAR)" in h
