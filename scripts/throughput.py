#!/usr/bin/env python3
"""End-to-end throughput of the telemetry pipeline (SQS -> Kinesis).

Measures, for a release build of `wharf`:
  * the embedded backend: `wharf run` over N submissions — messages/s and CPU-seconds per
    1,000 messages (CPU includes seeding the queue and the idle wait at the end);
  * moto's server: N submissions preloaded into SQS, one `wharf worker` draining them into
    Kinesis — messages/s and the worker's CPU-seconds per 1,000 messages (moto runs on the
    same machine and takes CPU too, so this measures the pair, not AWS);
  * the worker's start-up time to its first poll and its resident memory when idle.

Usage: .venv/bin/python scripts/throughput.py [--messages N] [--moto-messages N]
       [--wharf target/release/wharf]
Needs the .venv that scripts/test.sh creates (moto's server and boto3).
"""

import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
SAMPLES = ROOT / "examples/events/telemetry/submissions.jsonl"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, limit=60):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on port {port} after {limit} s")


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line (11 and 12 after the name).
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def valid_submissions(wharf, n, workdir):
    """The sample submissions `wharf invoke` accepts, repeated up to n."""
    valid = []
    for i, line in enumerate(SAMPLES.read_text().splitlines()):
        if not line.strip():
            continue
        event = workdir / f"sample-{i}.json"
        event.write_text(line)
        result = subprocess.run(
            [wharf, "invoke", "--processor", "telemetry", "--event", event],
            capture_output=True, text=True)
        if result.returncode == 0:
            valid.append(line)
    return [valid[i % len(valid)] for i in range(n)]


def pipeline_manifest(source, dead, stream, endpoint=None):
    aws = f"  aws:\n    region: us-east-1\n    endpointUrl: {endpoint}\n" if endpoint else ""
    return f"""apiVersion: wharf.dev/v1alpha1
kind: Pipeline
metadata:
  name: throughput
spec:
  source:
    sqs:
      queueUrl: {source}
      batchSize: 10
      waitTimeSeconds: 1
      visibilityTimeoutSeconds: 30
      maxInFlight: 200
  processor:
    telemetry:
      sink: events
  sinks:
    - name: events
      kinesis:
        streamName: {stream}
  deadLetter:
    sqs:
      queueUrl: {dead}
  worker:
    concurrency: 64
{aws}"""


def embedded(wharf, submissions, workdir):
    events = workdir / "events.jsonl"
    events.write_text("\n".join(submissions) + "\n")
    manifest = workdir / "embedded.yaml"
    manifest.write_text(pipeline_manifest(
        "https://sqs.local/000000000000/in", "https://sqs.local/000000000000/dead", "events"))
    process = subprocess.Popen(
        [wharf, "run", "-f", manifest, "--events", events, "--output", "json",
         "--output-dir", workdir / "out", "--until-idle", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        sys.exit(f"wharf run failed with status {status}")
    summary = json.loads(out)
    received = summary["received"]
    return {
        "messages": received,
        "messages_per_second": received / summary["elapsedSeconds"],
        "cpu_seconds_per_1000": (usage.ru_utime + usage.ru_stime) / received * 1000,
        "max_rss_mib": usage.ru_maxrss / 1024,
    }


def moto_run(wharf, submissions, workdir):
    import boto3  # from the project's venv

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen([VENV / "bin/moto_server", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_REGION="us-east-1")
        session = boto3.session.Session(aws_access_key_id="testing",
                                        aws_secret_access_key="testing",
                                        region_name="us-east-1")
        sqs = session.client("sqs", endpoint_url=endpoint)
        kinesis = session.client("kinesis", endpoint_url=endpoint)
        source = sqs.create_queue(QueueName="in")["QueueUrl"]
        dead = sqs.create_queue(QueueName="dead")["QueueUrl"]
        kinesis.create_stream(StreamName="events", ShardCount=2)
        manifest = workdir / "moto.yaml"
        manifest.write_text(pipeline_manifest(source, dead, "events", endpoint))

        # Start-up and idle memory, on the empty queue.
        log = workdir / "idle.log"
        started = time.time()
        with open(log, "w") as stderr:
            worker = subprocess.Popen(
                [wharf, "worker", "--pipeline", manifest, "--metrics-port", "0",
                 "--log-format", "json"], env=env, stderr=stderr, stdout=subprocess.DEVNULL)
        while "polling" not in log.read_text():
            if time.time() - started > 30 or worker.poll() is not None:
                sys.exit(f"the worker did not start polling:\n{log.read_text()}")
            time.sleep(0.005)
        startup = time.time() - started
        time.sleep(5)
        idle_rss = rss_mib(worker.pid)
        worker.terminate()
        worker.wait(timeout=30)

        for i in range(0, len(submissions), 10):
            chunk = submissions[i:i + 10]
            sqs.send_message_batch(QueueUrl=source, Entries=[
                {"Id": str(j), "MessageBody": body} for j, body in enumerate(chunk)])

        with open(workdir / "busy.log", "w") as stderr:
            started = time.time()
            worker = subprocess.Popen(
                [wharf, "worker", "--pipeline", manifest, "--metrics-port", "0",
                 "--log-format", "json"], env=env, stderr=stderr, stdout=subprocess.DEVNULL)
            while True:
                attributes = sqs.get_queue_attributes(QueueUrl=source, AttributeNames=[
                    "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
                counts = attributes["Attributes"]
                if counts["ApproximateNumberOfMessages"] == "0" and \
                        counts["ApproximateNumberOfMessagesNotVisible"] == "0":
                    break
                if worker.poll() is not None:
                    sys.exit("the worker exited early; see busy.log")
                time.sleep(0.2)
            elapsed = time.time() - started
            cpu = cpu_seconds(worker.pid)
            busy_rss = rss_mib(worker.pid)
            worker.terminate()
            worker.wait(timeout=60)
        return {
            "messages": len(submissions),
            "messages_per_second": len(submissions) / elapsed,
            "cpu_seconds_per_1000": cpu / len(submissions) * 1000,
            "startup_to_first_poll_ms": startup * 1000,
            "idle_rss_mib": idle_rss,
            "rss_after_run_mib": busy_rss,
        }
    finally:
        moto.terminate()
        moto.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000,
                        help="submissions for the embedded backend")
    # moto keeps every message and record in Python lists, so its cost per call grows with
    # the backlog; a smaller run measures the worker rather than moto's slowdown.
    parser.add_argument("--moto-messages", type=int, default=1000,
                        help="submissions for the run against moto")
    parser.add_argument("--wharf", default=str(ROOT / "target/release/wharf"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        submissions = valid_submissions(args.wharf, args.messages, workdir)
        results = {"embedded": embedded(args.wharf, submissions, workdir)}
        print(json.dumps(results, indent=2), flush=True)
        results["moto"] = moto_run(args.wharf, submissions[:args.moto_messages], workdir)
        print(json.dumps(results["moto"], indent=2))


if __name__ == "__main__":
    main()
