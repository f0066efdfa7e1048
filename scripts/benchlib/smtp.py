"""A real SMTP server (aiosmtpd, from Debian's python3-aiosmtpd) on 127.0.0.1, in this process,
recording the arrival time (time.monotonic()) and subject of every message."""
import email, email.policy, socket, sys, threading, time

from .common import free_port


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 in this process; records every message's
    arrival (time.monotonic()) and subject."""

    def __init__(self):
        try:
            from aiosmtpd.controller import Controller
        except ImportError:
            raise SystemExit("the notify scenario needs aiosmtpd (Debian: python3-aiosmtpd); "
                             f"{sys.executable} cannot import it")
        self.lock, self.messages = threading.Lock(), []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                arrived = time.monotonic()
                raw = envelope.original_content or envelope.content
                subject = str(email.message_from_bytes(raw, policy=email.policy.default).get("subject", ""))
                with sink.lock:
                    sink.messages.append((arrived, subject))
                return "250 2.0.0 Ok: queued"

        last = None
        for _ in range(20):
            self.port = free_port(socket.SOCK_STREAM)
            self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                         ready_timeout=10)
            try:
                self.controller.start()
                return
            except Exception as e:  # the port was taken between free_port and start
                last = e
                self.controller.stop(no_assert=True)
        raise SystemExit(f"the SMTP sink did not start: {last}")

    def since(self, t):
        with self.lock:
            return [(at, subject) for at, subject in self.messages if at >= t]

    def stop(self):
        self.controller.stop()
