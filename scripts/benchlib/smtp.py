"""A real SMTP server (aiosmtpd, from Debian's python3-aiosmtpd) on 127.0.0.1, in this process,
recording the arrival time (time.monotonic()) and subject of every message (`messages`), and
with them the envelope sender and the body (`mails`)."""
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
        self.mails = []  # dicts: at, subject, sender (envelope MAIL FROM), body
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                arrived = time.monotonic()
                raw = envelope.original_content or envelope.content
                parsed = email.message_from_bytes(raw, policy=email.policy.default)
                subject = str(parsed.get("subject", ""))
                with sink.lock:
                    sink.messages.append((arrived, subject))
                    sink.mails.append({"at": arrived, "subject": subject, "sender": envelope.mail_from,
                                       "body": body_text(parsed)})
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

    def mails_since(self, t, sender=None):
        """Every message that arrived at or after `t` (from envelope sender `sender` if given), as
        dicts: at, subject, sender, body."""
        with self.lock:
            return [dict(m) for m in self.mails if m["at"] >= t and sender in (None, m["sender"])]

    def stop(self):
        self.controller.stop()


def body_text(message):
    """The plain-text body of a parsed message ("" if it has none)."""
    try:
        part = message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""
    except (KeyError, LookupError, ValueError):
        return ""
