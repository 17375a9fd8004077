"""/api/v1/devices: register, subscriptions, unregister."""

from __future__ import annotations

import pytest

from tests.api_helpers import create_market, register_device, subscribe

TOKEN = "fcm-token-abc"


def test_register_is_idempotent_by_push_token(client):
    first = client.post("/api/v1/devices", json={"push_token": TOKEN, "platform": "android"})
    assert first.status_code == 201
    assert "push_token" not in first.json and first.json["subscriptions"] == []
    again = client.post("/api/v1/devices", json={"push_token": TOKEN, "platform": "web"})
    assert again.status_code == 200
    assert again.json["id"] == first.json["id"] and again.json["platform"] == "web"
    assert again.json["created_at"] == first.json["created_at"]
    assert again.json["last_seen_at"] >= first.json["last_seen_at"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"platform": "ios"}, "push_token"),
        ({"push_token": "", "platform": "ios"}, "push_token"),
        ({"push_token": "t" * 256, "platform": "ios"}, "push_token"),
        ({"push_token": TOKEN, "platform": "symbian"}, "platform"),
        ({"push_token": TOKEN}, "platform"),
        ({"push_token": TOKEN, "platform": "ios", "extra": 1}, "extra"),
    ],
)
def test_register_validation(client, body, field):
    response = client.post("/api/v1/devices", json=body)
    assert response.status_code == 422 and field in response.json["fields"], response.json


def test_replace_subscriptions(client):
    a, b = create_market(client)["id"], create_market(client)["id"]
    device = register_device(client, TOKEN)
    body = {
        "subscriptions": [
            {"market_id": b, "alarm_types": ["RAIN"]},
            {"market_id": a, "alarm_types": ["HEAT", "RAIN", "HEAT"]},
        ]
    }
    response = client.put(f"/api/v1/devices/{device['id']}/subscriptions", json=body, headers={"X-Push-Token": TOKEN})
    assert response.status_code == 200
    # In the order given (duplicates dropped), also when read back later.
    expected = [{"market_id": b, "alarm_types": ["RAIN"]}, {"market_id": a, "alarm_types": ["HEAT", "RAIN"]}]
    assert response.json["subscriptions"] == expected
    again = client.post("/api/v1/devices", json={"push_token": TOKEN, "platform": "android"})
    assert again.json["subscriptions"] == expected
    replaced = subscribe(client, device, TOKEN, b, "SNOW")
    assert replaced["subscriptions"] == [{"market_id": b, "alarm_types": ["SNOW"]}]
    emptied = client.put(
        f"/api/v1/devices/{device['id']}/subscriptions", json={"subscriptions": []}, headers={"X-Push-Token": TOKEN}
    )
    assert emptied.status_code == 200 and emptied.json["subscriptions"] == []


def test_subscriptions_need_the_devices_push_token(client):
    market = create_market(client)["id"]
    device = register_device(client, TOKEN)
    register_device(client, "someone-else")
    url = f"/api/v1/devices/{device['id']}/subscriptions"
    body = {"subscriptions": [{"market_id": market, "alarm_types": ["HEAT"]}]}
    for headers in ({}, {"X-Push-Token": "someone-else"}):
        response = client.put(url, json=body, headers=headers)
        assert response.status_code == 401 and "X-Push-Token" in response.json["message"]


@pytest.mark.parametrize(
    ("subscriptions", "field"),
    [
        ([{"market_id": 1}], "subscriptions.0.alarm_types"),
        ([{"market_id": 1, "alarm_types": []}], "subscriptions.0.alarm_types"),
        ([{"market_id": 1, "alarm_types": ["FOG"]}], "subscriptions.0.alarm_types.0"),
        ([{"market_id": "one", "alarm_types": ["HEAT"]}], "subscriptions.0.market_id"),
        ([{"market_id": 2**40, "alarm_types": ["HEAT"]}], "subscriptions.0.market_id"),
        ("HEAT", "subscriptions"),
    ],
)
def test_subscription_validation(client, subscriptions, field):
    device = register_device(client, TOKEN)
    response = client.put(
        f"/api/v1/devices/{device['id']}/subscriptions",
        json={"subscriptions": subscriptions},
        headers={"X-Push-Token": TOKEN},
    )
    assert response.status_code == 422 and field in response.json["fields"], response.json


def test_unknown_market_is_422_and_keeps_old_subscriptions(client):
    market = create_market(client)["id"]
    device = register_device(client, TOKEN)
    subscribe(client, device, TOKEN, market, "HEAT")
    body = {
        "subscriptions": [
            {"market_id": market, "alarm_types": ["RAIN"]},
            {"market_id": 999999, "alarm_types": ["HEAT"]},
        ]
    }
    response = client.put(f"/api/v1/devices/{device['id']}/subscriptions", json=body, headers={"X-Push-Token": TOKEN})
    assert response.status_code == 422
    assert response.json["fields"] == {"subscriptions.1.market_id": ["market 999999 does not exist"]}
    again = client.post("/api/v1/devices", json={"push_token": TOKEN, "platform": "android"}).json
    assert again["subscriptions"] == [{"market_id": market, "alarm_types": ["HEAT"]}]


def test_unknown_device_gets_the_same_answer_as_a_wrong_token(client):
    """Device ids are sequential: a different answer for an unknown one would let anyone count devices."""
    device = register_device(client, TOKEN)
    answers = set()
    for device_id, headers in [
        (424242, {"X-Push-Token": TOKEN}),
        (device["id"], {"X-Push-Token": "someone-else"}),
        (device["id"], {}),
        (424242, {}),
    ]:
        put = client.put(f"/api/v1/devices/{device_id}/subscriptions", json={"subscriptions": []}, headers=headers)
        delete = client.delete(f"/api/v1/devices/{device_id}", headers=headers)
        answers |= {(put.status_code, put.get_data()), (delete.status_code, delete.get_data())}
    assert len(answers) == 1 and answers.pop()[0] == 401


def test_unregister(client):
    market = create_market(client)["id"]
    device = register_device(client, TOKEN)
    subscribe(client, device, TOKEN, market, "HEAT")
    assert client.delete(f"/api/v1/devices/{device['id']}").status_code == 401
    response = client.delete(f"/api/v1/devices/{device['id']}", headers={"X-Push-Token": TOKEN})
    assert response.status_code == 204 and response.data == b""
    assert (
        client.delete(f"/api/v1/devices/{device['id']}", headers={"X-Push-Token": TOKEN}).status_code == 401
    )  # gone: the same answer as any unknown device
    assert client.post("/api/v1/devices", json={"push_token": TOKEN, "platform": "ios"}).status_code == 201
