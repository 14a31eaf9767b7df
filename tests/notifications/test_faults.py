"""Fault injection on the real delivery path: a broker that goes away, a mail
server that is down or refuses an address, a worker killed mid-send, and the
same task delivered many times. Each test runs a real `celery worker`
subprocess, so the database is transactional."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core import mail
from django.db import transaction
from django.utils import timezone
from kombu import Exchange, Queue, pools
from kombu.common import ignore_errors
from kombu.utils.collections import eqhash
from pytest_django import Settings

from notifications import delivery
from notifications.models import Channel, Kind, Notification, Status
from notifications.tasks import notification_send
from shipments.checkpoints import checkpoint_record
from shipments.dispatch import shipment_dispatch
from shipments.models import Shipment
from shipments.status import EventKind, ShipmentStatus
from tests.factories import OwnFleetFactory, dispatched_shipment, ready_shipment
from tests.helpers import real_clock_env
from tests.notifications.conftest import Worker, free_port, wait_for
from tracksop.celery import app as celery_app

# Faults of processes (Redis, worker, mail server) and what survives them:
# timing is monotonic, no date is asserted, so the run with the clock moved
# 13 months (make test-future) leaves them out.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.clock_free]


# --- helpers --------------------------------------------------------------


def _email_url(sink: Any) -> str:
    return f"smtp://127.0.0.1:{sink.port}"


def _row(shipment: Shipment, kind: str = Kind.DISPATCHED) -> Notification:
    return Notification.objects.get(shipment=shipment, kind=kind, channel=Channel.EMAIL)


def _has(pk: int, **lookups: Any) -> bool:
    return Notification.objects.filter(pk=pk, **lookups).exists()


# Generous: the machine may be busy; a passing test does not wait this long.
WAIT = 60.0


def _until(condition: Any, what: str, *workers: Worker, timeout: float = WAIT) -> Any:
    """wait_for, with the workers' logs in the failure message."""
    try:
        return wait_for(condition, timeout=timeout, what=what)
    except pytest.fail.Exception:
        logs = "\n".join(worker.output()[-6000:] for worker in workers)
        pytest.fail(f"Timed out after {timeout}s waiting for {what}\n{logs}")


_TASK = r"notifications\.tasks\.notification_send\[[0-9a-f-]+\]"


def _tasks(worker: Worker) -> tuple[int, int]:
    """How many notification_send tasks the worker received and finished."""
    log = worker.output()
    return (
        len(re.findall(_TASK + r" received", log)),
        len(re.findall(_TASK + r" succeeded", log)),
    )


def _wait_idle(worker: Worker, *, received: int) -> None:
    """Wait until the worker has received at least `received` sends and
    finished every one it received."""

    def idle() -> bool:
        got, done = _tasks(worker)
        return got >= received and done == got

    _until(idle, f"the worker to finish {received} sends", worker)


def _dispatch(shipment: Shipment) -> Shipment:
    return shipment_dispatch(
        shipment=shipment,
        user=None,
        carrier=OwnFleetFactory(),
        tracking_number="",
        estimated_delivery=timezone.localdate() + timedelta(days=3),
    )


# --- a Redis of our own -----------------------------------------------------


@dataclass
class RedisServer:
    """A throwaway `redis-server` that a test may stop and start again on the
    same port (no persistence: a restart comes back empty)."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.process = subprocess.Popen(  # noqa: S603
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env=real_clock_env(),
        )
        wait_for(self._answers, timeout=15, what="redis-server to answer")

    def kill(self) -> None:
        """SIGKILL: every client's connection drops at once, as in a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


def _publish_to(url: str) -> None:
    """Point this process's Celery app (the publishing side, which the commit
    hooks and the sweeper use) at another broker. Celery reads
    CELERY_BROKER_URL from the environment before its own configuration, and
    caches a connection pool and a producer pool for the old URL."""
    os.environ["CELERY_BROKER_URL"] = url
    # The stubs make broker_url a read-only property; Celery's Settings is a
    # mapping underneath and the assignment sets the key.
    celery_app.conf.broker_url = url  # type: ignore[misc]
    # Dropped, not closed: kombu keeps pools in a global registry keyed by the
    # connection, and closing them would break the next user of the old URL.
    # Celery has no public way to drop them, hence the private attributes.
    celery_app._pool = None  # type: ignore[attr-defined]  # noqa: SLF001
    celery_app.amqp._producer_pool = None  # type: ignore[attr-defined]  # noqa: SLF001


def _forget_pools(url: str) -> None:
    """Close and unregister the pools kombu made for a broker that is gone."""
    connection = celery_app.connection_for_write(url)
    try:
        for group in (pools.producers, pools.connections):
            pool = dict.pop(group, eqhash(connection), None)
            if pool is not None:
                pool.force_close_all()
    finally:
        connection.release()


@pytest.fixture
def private_broker(tmp_path: Path, settings: Settings) -> Iterator[RedisServer]:
    server = RedisServer(port=free_port(), workdir=tmp_path)
    server.start()
    saved_env = os.environ.get("CELERY_BROKER_URL")
    saved_conf = celery_app.conf["broker_url"]
    # worker_env() and purge_broker() read the Django setting.
    settings.CELERY_BROKER_URL = server.url
    _publish_to(server.url)
    try:
        yield server
    finally:
        _forget_pools(server.url)
        if saved_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved_env
        celery_app.conf["broker_url"] = saved_conf
        celery_app._pool = None  # type: ignore[attr-defined]  # noqa: SLF001
        celery_app.amqp._producer_pool = None  # type: ignore[attr-defined]  # noqa: SLF001
        server.stop()


# --- the tests --------------------------------------------------------------


def test_closing_a_broker_connection_after_redis_died_mid_poll_is_not_a_crash(
    private_broker: RedisServer,
) -> None:
    """What a worker does when the connection drops: collect() the broken
    connection, then close() it, ignoring connection errors. If the drop was
    first seen on the pub/sub socket, the task channel still has a BRPOP in
    flight and unacknowledged messages; collect() leaves it open, and closing
    it then must be a connection error, not an AttributeError that stops the
    worker for good."""
    tasks = Queue("celery")
    control = Queue("c.pidbox", Exchange("c.pidbox", type="fanout"), auto_delete=True)
    connection = celery_app.connection_for_write()
    with connection.Producer() as producer:
        for n in range(3):
            producer.publish({"n": n}, routing_key="celery", declare=[tasks])
    received: list[Any] = []
    consumer = connection.Consumer([tasks], callbacks=[lambda b, m: received.append(m)])
    consumer.consume()
    connection.drain_events(timeout=5)
    listener = connection.Consumer(
        [control], channel=connection.channel(), callbacks=[], no_ack=True
    )
    listener.consume()
    # kombu's Redis channel: the poll and the QoS it drives are not typed, and
    # the state this test is about has no public handle.
    channel: Any = consumer.channel
    channel._brpop_start()  # noqa: SLF001
    assert received
    assert channel.qos._delivered  # noqa: SLF001

    private_broker.kill()
    connection.collect(socket_timeout=1)
    ignore_errors(connection, connection.close)  # raises nothing else


def test_broker_down_while_a_checkpoint_is_logged_the_sweeper_sends_it_later(
    smtp_sink: Any, start_worker: Any, private_broker: RedisServer, settings: Settings
) -> None:
    broker = private_broker
    address = "broker-down@example.net"
    shipment = ready_shipment(recipient_email=address)

    # The publishing side really uses our server: with no worker running yet,
    # the dispatch messages wait in its queue, and nowhere else.
    assert celery_app.connection_for_write().as_uri().endswith(f":{broker.port}/0")
    shipment = _dispatch(shipment)
    assert broker.client().llen("celery") == 2  # email and SMS

    worker = start_worker(
        purge=False, CELERY_BROKER_URL=broker.url, EMAIL_URL=_email_url(smtp_sink)
    )
    _until(
        lambda: smtp_sink.to(address),
        "the dispatch email via the private broker",
        worker,
    )
    connected = re.compile(rf"Connected to redis://\S*127\.0\.0\.1:{broker.port}/0")
    assert len(connected.findall(worker.output())) == 1

    broker.stop()
    started = time.monotonic()
    event = checkpoint_record(
        shipment=shipment, kind=EventKind.OUT_FOR_DELIVERY, user=None
    )
    elapsed = time.monotonic() - started

    assert elapsed < 5, f"logging a checkpoint took {elapsed:.1f}s with Redis down"
    shipment.refresh_from_db()
    assert shipment.status == ShipmentStatus.OUT_FOR_DELIVERY
    assert shipment.events.filter(pk=event.pk).exists()
    rows = Notification.objects.filter(shipment=shipment, kind=Kind.OUT_FOR_DELIVERY)
    assert {(r.channel, r.status, r.attempts) for r in rows} == {
        (Channel.EMAIL, Status.PENDING, 0),
        (Channel.SMS, Status.PENDING, 0),
    }

    broker.start()
    _until(
        lambda: len(connected.findall(worker.output())) >= 2,
        "the worker to reconnect to Redis",
        worker,
    )
    assert broker.client().llen("celery") == 0  # nothing was queued while down
    settings.TRACKSOP_NOTIFY_STALE_SECONDS = 0
    assert delivery.notifications_sweep() == 2

    email = _row(shipment, Kind.OUT_FOR_DELIVERY)
    _until(
        lambda: not rows.exclude(status=Status.SENT).exists(),
        "the swept email and SMS to be sent",
        worker,
    )
    assert delivery.notifications_sweep() == 0
    _wait_idle(worker, received=4)
    out_for_delivery = [
        m for m in smtp_sink.to(address) if "out for delivery" in m["Subject"].lower()
    ]
    assert len(out_for_delivery) == 1
    assert len(smtp_sink.to(address)) == 2  # dispatch + out for delivery
    email.refresh_from_db()
    assert email.attempts == 1
    assert email.provider_message_id == out_for_delivery[0]["Message-ID"]


def test_ten_redis_crashes_under_a_sending_worker_send_every_message_once(
    smtp_sink: Any, start_worker: Any, private_broker: RedisServer, settings: Settings
) -> None:
    broker = private_broker
    smtp_sink.delay = 0.02  # sends take a moment, so some are always in flight
    worker = start_worker(
        quiet=False,  # its pub/sub sockets are where a drop is sometimes seen first
        CELERY_BROKER_URL=broker.url,
        EMAIL_URL=_email_url(smtp_sink),
        TRACKSOP_NOTIFY_LEASE_SECONDS="2",
    )
    connected = re.compile(rf"Connected to redis://\S*127\.0\.0\.1:{broker.port}/0")
    addresses: list[str] = []

    def dispatch_some(count: int) -> None:
        with transaction.atomic():
            for _ in range(count):
                addresses.append(f"crash-{len(addresses)}@example.net")
                dispatched_shipment(recipient_email=addresses[-1])

    for crash in range(1, 11):
        sent_before = len(smtp_sink.messages)
        dispatch_some(6)
        _until(
            lambda n=sent_before: (
                len(smtp_sink.messages) > n or worker.process.poll() is not None
            ),
            "the worker to be sending",
            worker,
        )
        broker.kill()
        dispatch_some(1)  # while Redis is down: pending rows, no tasks
        broker.start()
        _until(
            lambda n=crash: (
                len(connected.findall(worker.output())) > n
                or worker.process.poll() is not None
            ),
            f"the worker to reconnect after crash {crash}",
            worker,
        )
        assert worker.process.poll() is None, f"the worker exited:\n{worker.output()}"

    # Redis came back empty each time: tasks it held are gone, their rows are
    # pending (or claimed by a send that a lease lets go); the sweeper queues them.
    settings.TRACKSOP_NOTIFY_STALE_SECONDS = 0
    rows = Notification.objects.filter(shipment__recipient_email__in=addresses)

    def all_sent() -> bool:
        if rows.exclude(status=Status.SENT).exists():
            delivery.notifications_sweep()
            time.sleep(0.5)
            return False
        return True

    _until(all_sent, "every message to be sent", worker)
    assert worker.process.poll() is None
    assert "Unrecoverable error" not in worker.output()
    emails = rows.filter(channel=Channel.EMAIL)
    assert emails.count() == len(addresses) == 70
    assert sorted(str(m["To"]) for m in smtp_sink.messages) == sorted(addresses)
    for row in emails:
        assert row.provider_message_id in {
            m["Message-ID"] for m in smtp_sink.to(row.to)
        }


def test_mail_server_down_is_retried_with_backoff_then_sent_once(
    smtp_sink: Any, start_worker: Any
) -> None:
    address = "smtp-down@example.net"
    smtp_sink.stop()
    worker = start_worker(
        EMAIL_URL=_email_url(smtp_sink),
        # Room for many fast retries on a slow machine before it would give up.
        TRACKSOP_NOTIFY_MAX_ATTEMPTS="30",
    )
    shipment = dispatched_shipment(recipient_email=address)
    row = _row(shipment)

    # Pending again after a failed attempt, with the next one in the future.
    _until(
        lambda: (
            Notification.objects.filter(
                pk=row.pk,
                status=Status.PENDING,
                attempts__gte=2,
                next_attempt_at__gt=timezone.now(),
            )
            .exclude(last_error="")
            .exists()
        ),
        "two failed attempts and a scheduled retry",
        worker,
    )
    row.refresh_from_db()
    assert "ConnectionRefusedError" in row.last_error
    assert row.sent_at is None
    failed_attempts = row.attempts

    smtp_sink.start()
    _until(lambda: smtp_sink.to(address), "the email after the server returned", worker)
    _until(lambda: _has(row.pk, status=Status.SENT), "the row to be sent", worker)
    row.refresh_from_db()
    assert row.attempts > failed_attempts
    assert row.last_error == ""
    assert row.next_attempt_at is None
    assert len(smtp_sink.to(address)) == 1
    assert smtp_sink.rcpts.count(address) == 1


def test_refused_recipient_fails_after_one_attempt_and_others_are_delivered(
    smtp_sink: Any, start_worker: Any
) -> None:
    refused, other = "no-such-user@example.net", "reader@example.net"
    sender = "dispatch@acme.example"
    smtp_sink.refuse = {refused}
    worker = start_worker(EMAIL_URL=_email_url(smtp_sink))

    bounced = dispatched_shipment(
        recipient_email=refused, sender_email=sender, notify_sender=True
    )
    fine = dispatched_shipment(recipient_email=other)

    row = Notification.objects.get(shipment=bounced, channel=Channel.EMAIL, to=refused)
    _until(lambda: _has(row.pk, status=Status.FAILED), "the refused row", worker)
    _until(lambda: smtp_sink.to(other), "the other recipient's email", worker)
    _until(lambda: smtp_sink.to(sender), "the sender's copy", worker)
    _until(
        lambda: (
            _has(_row(fine).pk, status=Status.SENT)
            and _has(
                Notification.objects.get(shipment=bounced, to=sender).pk,
                status=Status.SENT,
            )
        ),
        "the delivered rows to be marked sent",
        worker,
    )

    row.refresh_from_db()
    assert row.attempts == 1
    assert row.next_attempt_at is None
    assert "refused" in row.last_error
    assert "550" in row.last_error
    assert smtp_sink.to(refused) == []
    assert smtp_sink.rcpts.count(refused) == 1
    assert len(smtp_sink.to(other)) == 1
    assert len(smtp_sink.to(sender)) == 1


def test_worker_killed_mid_send_the_message_goes_out_once(
    smtp_sink: Any, start_worker: Any, settings: Settings
) -> None:
    address = "killed-worker@example.net"
    lease = {"TRACKSOP_NOTIFY_LEASE_SECONDS": "2"}
    # The first worker waits inside RCPT until it is killed (its own socket
    # timeout is longer than that wait).
    smtp_sink.delay = 60.0
    first = start_worker(EMAIL_URL=_email_url(smtp_sink), EMAIL_TIMEOUT="90", **lease)
    shipment = dispatched_shipment(recipient_email=address)
    row = _row(shipment)
    assert smtp_sink.rcpt_seen.wait(30), "the worker never reached RCPT"

    # A second worker is up before the first dies; both tasks of the dispatch
    # are already reserved by the first, so it has nothing to do yet.
    second = start_worker(purge=False, EMAIL_URL=_email_url(smtp_sink), **lease)
    assert _has(row.pk, status=Status.SENDING, attempts=1)
    first.kill()
    smtp_sink.delay = 0.0
    assert smtp_sink.to(address) == []
    assert _tasks(second) == (0, 0)

    # The dead worker's task stays unacknowledged in Redis until the visibility
    # timeout (hours); the lapsed lease and the sweeper hand the row over.
    _until(
        lambda: _has(row.pk, status=Status.SENDING, next_attempt_at__lt=timezone.now()),
        "the first worker's lease to lapse",
        timeout=10,
    )
    # The sweep returns the row to pending and queues it at once: its worker
    # is gone. The SMS row comes along if the kill caught its task before it
    # ran (pending rows are queued at once with a stale time of 0).
    settings.TRACKSOP_NOTIFY_STALE_SECONDS = 0
    swept = delivery.notifications_sweep()
    assert swept in (1, 2)

    _until(lambda: smtp_sink.to(address), "the email from the second worker", second)
    _until(
        lambda: not shipment.notifications.exclude(status=Status.SENT).exists(),
        "the email and SMS rows to be sent",
        second,
    )
    row.refresh_from_db()
    assert row.attempts == 2
    assert row.provider_message_id == smtp_sink.to(address)[0]["Message-ID"]

    # A redelivered task (or a sweep racing the commit hook) for a sent row
    # does nothing, in the worker and in this process alike.
    notification_send.delay(row.pk)
    notification_send.delay(row.pk)
    assert delivery.notification_deliver(notification_id=row.pk) is None
    assert delivery.notification_deliver(notification_id=row.pk) is None
    assert mail.outbox == []
    _wait_idle(second, received=swept + 2)

    assert len(smtp_sink.to(address)) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.SENT, 2)


def test_the_same_notification_queued_five_times_is_sent_once(
    smtp_sink: Any, start_worker: Any
) -> None:
    address = "five-times@example.net"
    # Queued on commit before any worker runs; starting one empties the broker,
    # so the row is pending and in no queue.
    shipment = dispatched_shipment(recipient_email=address)
    row = _row(shipment)
    worker = start_worker(EMAIL_URL=_email_url(smtp_sink), concurrency=4)
    smtp_sink.delay = 0.5  # hold the winner inside the conversation

    for _ in range(5):
        notification_send.delay(row.pk)

    _until(lambda: smtp_sink.to(address), "the email", worker)
    _until(lambda: _has(row.pk, status=Status.SENT), "the row to be sent", worker)
    _wait_idle(worker, received=5)

    assert len(smtp_sink.to(address)) == 1
    assert smtp_sink.rcpts.count(address) == 1
    row.refresh_from_db()
    assert row.attempts == 1


def test_a_backlog_goes_out_once_each_when_tasks_send_several(
    smtp_sink: Any, start_worker: Any
) -> None:
    worker = start_worker(EMAIL_URL=_email_url(smtp_sink), concurrency=2)
    addresses = [f"backlog-{n}@example.net" for n in range(25)]
    # One commit: 25 emails and 25 texts due at once, their tasks queued together.
    with transaction.atomic():
        shipments = [dispatched_shipment(recipient_email=a) for a in addresses]
    rows = Notification.objects.filter(shipment__in=shipments)

    _until(
        lambda: not rows.exclude(status=Status.SENT).exists(),
        "the backlog to be sent",
        worker,
    )
    _wait_idle(worker, received=50)

    assert sorted(str(m["To"]) for m in smtp_sink.messages) == sorted(addresses)
    assert set(rows.values_list("attempts", flat=True)) == {1}
    # One connection per worker thread, however many tasks each ran.
    assert smtp_sink.sessions <= 2
