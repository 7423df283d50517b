"""AlertmanagerConfig: null by default, three lines of values to switch."""

import pytest
import yaml

from obslib.catalogue import build_catalogue
from obslib.emit.alertmanager import render_alertmanager_config
from obslib.errors import ConfigError
from obslib.settings import load_settings

# The receiver fields the AlertmanagerConfig CRD (v1alpha1) has, per exporters.md section 4.
AMC_RECEIVER_FIELDS = {
    "opsgenieConfigs", "pagerdutyConfigs", "discordConfigs", "slackConfigs", "webhookConfigs",
    "wechatConfigs", "emailConfigs", "victoropsConfigs", "pushoverConfigs", "snsConfigs",
    "telegramConfigs", "webexConfigs", "msteamsConfigs", "msteamsv2Configs", "rocketchatConfigs",
}  # fmt: skip


def amc_for(tmp_path, receiver_yaml):
    path = tmp_path / "values.yaml"
    path.write_text(receiver_yaml)
    return render_alertmanager_config(build_catalogue(load_settings(path)))


def test_default_routes_everything_to_a_null_receiver(repo):
    amc = yaml.safe_load((repo / "rules/alertmanagerconfig.yaml").read_text())
    assert (
        amc["kind"] == "AlertmanagerConfig"
        and amc["apiVersion"] == "monitoring.coreos.com/v1alpha1"
    )
    assert amc["metadata"]["namespace"] == "daedalus"
    route = amc["spec"]["route"]
    assert route["receiver"] == "null"
    assert amc["spec"]["receivers"] == [{"name": "null"}]
    assert route["matchers"] == [{"name": "daedalus_component", "matchType": "=~", "value": ".+"}]


@pytest.mark.parametrize(
    ("rtype", "field", "secret_field", "secret"),
    [
        (
            "pagerduty",
            "pagerdutyConfigs",
            "routingKey",
            {"name": "pagerduty-routing-key", "key": "routing-key"},
        ),
        ("mattermost", "slackConfigs", "apiURL", {"name": "mattermost-webhook-url", "key": "url"}),
        ("github", "webhookConfigs", "urlSecret", {"name": "github-receiver-url", "key": "url"}),
    ],
)
def test_three_lines_switch_the_receiver(tmp_path, rtype, field, secret_field, secret):
    amc = amc_for(tmp_path, f"alerting:\n  receiver:\n    type: {rtype}\n")
    (receiver,) = amc["spec"]["receivers"]
    assert amc["spec"]["route"]["receiver"] == receiver["name"] == rtype
    assert set(receiver) - {"name"} == {field}
    assert field in AMC_RECEIVER_FIELDS
    assert receiver[field][0][secret_field] == secret  # a Secret reference, never a literal key


def test_receiver_config_overrides_secret_and_channel(tmp_path):
    amc = amc_for(
        tmp_path,
        "alerting:\n  receiver:\n    type: mattermost\n    config: {secretName: mm, secretKey: hook, channel: oncall}\n",
    )
    slack = amc["spec"]["receivers"][0]["slackConfigs"][0]
    assert slack["apiURL"] == {"name": "mm", "key": "hook"} and slack["channel"] == "oncall"


def test_every_alert_carries_the_namespace_the_amc_route_matches(catalogue, repo):
    rules = yaml.safe_load((repo / "rules/daedalus-alerts.yaml").read_text())
    amc = yaml.safe_load((repo / "rules/alertmanagerconfig.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["namespace"] == amc["metadata"]["namespace"]
            assert rule["labels"]["daedalus_component"]


@pytest.mark.parametrize(
    "config",
    ["{secretName: {a: 1}}", "{secretName: [mm]}", "{secretKey: 7}", "{channel: {a: 1}}"],
)
def test_a_secret_reference_of_the_wrong_type_never_reaches_the_amc(tmp_path, config):
    with pytest.raises(ConfigError, match=r"'alerting\.receiver\.config\.\w+' must be"):
        amc_for(tmp_path, f"alerting:\n  receiver:\n    type: mattermost\n    config: {config}\n")
