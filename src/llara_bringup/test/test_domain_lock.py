"""One launcher per DDS domain: a second claim is refused naming the holder, until every holder
(the launcher and the nodes that inherited its descriptor) has let go."""
import os
import subprocess
import sys

import pytest

from llara_bringup.domain_lock import DomainError, claim_domain, current_domain

# Lock names only: far outside DDS's 0-232 so no real graph on this machine is touched.
DOMAIN = 100_000 + os.getpid() % 100_000


def claim_in_another_process(domain: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-c', 'import sys; from llara_bringup.domain_lock import claim_domain; '
                               f'claim_domain({domain}); print("claimed")'],
        capture_output=True, text=True, timeout=60)


def test_a_second_claim_is_refused_naming_the_holder_until_released():
    handle = claim_domain(DOMAIN)
    refused = claim_in_another_process(DOMAIN)
    assert refused.returncode != 0 and 'claimed' not in refused.stdout
    assert f'DomainError: another llara_bringup.launch (pid {os.getpid()}) runs a graph in ' \
           f'DDS domain {DOMAIN}' in refused.stderr
    handle.close()
    granted = claim_in_another_process(DOMAIN)
    assert granted.returncode == 0 and granted.stdout.strip() == 'claimed', granted.stderr


def test_a_child_that_inherited_the_descriptor_keeps_the_domain_after_its_parent_let_go():
    handle = claim_domain(DOMAIN + 1)
    child = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],
                             stdin=subprocess.PIPE, pass_fds=(handle.fileno(),))
    try:
        handle.close()  # as a launcher killed before its nodes
        assert claim_in_another_process(DOMAIN + 1).returncode != 0
    finally:
        child.communicate(input=b'', timeout=30)  # the last holder exits
    assert claim_in_another_process(DOMAIN + 1).returncode == 0


def test_the_domain_comes_from_ros_domain_id(monkeypatch):
    monkeypatch.setenv('ROS_DOMAIN_ID', ' 42 ')
    assert current_domain() == 42
    monkeypatch.setenv('ROS_DOMAIN_ID', '')
    assert current_domain() == 0  # ROS 2's default domain
    monkeypatch.delenv('ROS_DOMAIN_ID')
    assert current_domain() == 0
    monkeypatch.setenv('ROS_DOMAIN_ID', 'lab')
    with pytest.raises(DomainError, match="ROS_DOMAIN_ID='lab' is not a domain number"):
        current_domain()
