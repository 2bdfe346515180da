-- Runs once, when the PostgreSQL container starts on an empty data directory
-- (mounted into /docker-entrypoint-initdb.d by deploy/docker-compose.yml).
--
-- One database per service, each owned by its own role, and nobody else may connect to it:
-- a service cannot read another service's tables even by mistake.
-- These passwords are for the compose stack only; a shared or production server gets its own.

CREATE ROLE onboarding LOGIN PASSWORD 'onboarding';
CREATE ROLE payments LOGIN PASSWORD 'payments';
CREATE ROLE accounts LOGIN PASSWORD 'accounts';

CREATE DATABASE onboarding OWNER onboarding ENCODING 'UTF8';
CREATE DATABASE payments OWNER payments ENCODING 'UTF8';
CREATE DATABASE accounts OWNER accounts ENCODING 'UTF8';

REVOKE ALL ON DATABASE onboarding FROM PUBLIC;
REVOKE ALL ON DATABASE payments FROM PUBLIC;
REVOKE ALL ON DATABASE accounts FROM PUBLIC;
