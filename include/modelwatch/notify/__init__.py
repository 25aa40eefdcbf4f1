"""Notifications of alert transitions and retraining outcomes: a transactional outbox
(:mod:`.outbox`), the message text (:mod:`.messages`) and SMTP delivery (:mod:`.smtp`)."""
