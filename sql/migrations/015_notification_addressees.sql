-- 015: recipients a notification names itself, beside those of the modelwatch_smtp connection: the approvers of a
-- model (Variable modelwatch_approvers, include/modelwatch/training/approval.py) receive its approval requests.
ALTER TABLE notifications ADD COLUMN addressed_to text[] NOT NULL DEFAULT '{}';
