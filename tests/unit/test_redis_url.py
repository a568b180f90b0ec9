"""How MERGEBOT_REDIS_URL (and MERGEBOT_REDIS_CLUSTER) name a single server or a Redis Cluster."""

from __future__ import annotations

import pytest

from mergebot.redis_url import RedisTarget, redis_target


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/9", "rediss://:pw@cache.internal:6380/0", "unix:///run/r.sock"]
)
def test_a_plain_url_is_one_server_and_passed_on_unchanged(url: str) -> None:
    assert redis_target(url) == RedisTarget(url)


def test_a_cluster_url_lists_its_startup_nodes_and_connects_through_the_first() -> None:
    target = redis_target("rediss+cluster://app:s3cret@10.0.0.1:7000,10.0.0.2,[::1]:7002/0?x=1")
    assert target.cluster
    assert target.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002))
    assert target.url == "rediss://app:s3cret@10.0.0.1:7000?x=1"


def test_the_cluster_setting_reads_a_plain_url_as_a_node_of_a_cluster() -> None:
    target = redis_target("redis://10.0.0.5:7000", cluster=True)
    assert (target.url, target.nodes) == ("redis://10.0.0.5:7000", (("10.0.0.5", 7000),))


@pytest.mark.parametrize(
    ("url", "cluster", "problem"),
    [
        ("redis+cluster://127.0.0.1:7000/3", False, "only database 0, not 3"),
        ("redis://127.0.0.1:7000/9", True, "only database 0, not 9"),
        ("unix:///run/redis.sock", True, "unix:// cannot name one"),
        ("redis+cluster://127.0.0.1:7000,,127.0.0.1:7001", False, "one is empty"),
        ("redis+cluster://127.0.0.1:http", False, "bad port"),
        ("redis+cluster://:pw@:7000", False, "no host"),
        ("http://127.0.0.1:7000", False, "unknown scheme http://"),
    ],
)
def test_a_url_that_cannot_name_the_redis_is_refused_with_why(
    url: str, cluster: bool, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        redis_target(url, cluster=cluster)
    assert "pw" not in str(caught.value)
