-- Run once as a superuser (psql -v owner_pw=... -v auth_pw=... -v memory_pw=...).
-- The services log in as roles that own nothing and cannot bypass row-level
-- security; the owner role runs the migrations. Same roles as
-- deploy/local/postgres.sh creates on a developer machine.
CREATE ROLE ninaivalaigal_owner  LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE PASSWORD :'owner_pw';
CREATE ROLE ninaivalaigal_auth   LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB PASSWORD :'auth_pw';
CREATE ROLE ninaivalaigal_memory LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB PASSWORD :'memory_pw';
CREATE DATABASE ninaivalaigal OWNER ninaivalaigal_owner;
