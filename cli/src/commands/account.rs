//! register, login, logout, whoami, account delete.

use std::{
    io::{self, BufRead, IsTerminal, Write},
    time::Duration,
};

use chrono::Utc;
use ninaivalaigal::auth_v1::{
    DeleteAccountRequest, LoginRequest, LogoutRequest, RegisterRequest, WhoAmIRequest,
    auth_service_client::AuthServiceClient,
};
use tonic::{Code, Status};

use crate::{
    client::{App, Bearer, channel},
    credentials::Credentials,
    exit::{Failure, Kind, Server},
    output::{DeletedAccountView, LoginView, LogoutView, WhoAmIView, time},
    session::credentials_for,
};

/// How long ending a replaced login may hold up the new one.
const REPLACED_LOGOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates an account and saves its first session.
pub async fn register(
    app: &App,
    email: &str,
    name: Option<&str>,
    password: String,
) -> Result<LoginView, Failure> {
    let name = name
        .map(str::to_owned)
        .unwrap_or_else(|| email.split('@').next().unwrap_or(email).to_owned());
    let request = RegisterRequest {
        email: email.to_owned(),
        password,
        name,
    };
    let response = app
        .auth_client()
        .register(request)
        .await
        .map_err(|status| {
            Failure::from_status(&status, &app.auth_server()).hint_if(
                Kind::Conflict,
                format!("log in to it with `eM login --email {email}`"),
            )
        })?
        .into_inner();
    save(app, response.user, response.session, true).await
}

/// Logs in and saves the session.
pub async fn login(app: &App, email: &str, password: String) -> Result<LoginView, Failure> {
    let request = LoginRequest {
        email: email.to_owned(),
        password,
    };
    let response = app
        .auth_client()
        .login(request)
        .await
        .map_err(|status| match status.code() {
            Code::Unauthenticated => Failure::new(Kind::Auth, "wrong email or password")
                .hint("check both and try again; no account yet? run `eM register`"),
            _ => Failure::from_status(&status, &app.auth_server()),
        })?
        .into_inner();
    save(app, response.user, response.session, false).await
}

async fn save(
    app: &App,
    user: Option<ninaivalaigal::auth_v1::User>,
    session: Option<ninaivalaigal::auth_v1::Session>,
    registered: bool,
) -> Result<LoginView, Failure> {
    let (Some(user), Some(session)) = (user, session) else {
        return Err(Failure::new(
            Kind::Other,
            "the auth-service answered without a user or a session",
        ));
    };
    let credentials = credentials_for(
        &user,
        session,
        &app.config.server_url,
        &app.config.auth_url,
        Utc::now(),
    )?;
    let previous = app.config.credentials.load().ok().flatten();
    app.config.credentials.save(&credentials)?;
    // The login this one replaces would otherwise stay valid until it
    // expires; end it at the auth-service that issued it, which may be
    // another one (best effort: it may be expired, revoked or unreachable).
    if let Some(previous) = previous
        && let Ok(channel) = channel(&previous.auth_url, &app.config)
    {
        let request = LogoutRequest {
            refresh_token: previous.refresh_token,
        };
        let mut client = AuthServiceClient::new(channel);
        let _ = tokio::time::timeout(REPLACED_LOGOUT_TIMEOUT, client.logout(request)).await;
    }
    Ok(LoginView {
        session_id: credentials.session_id.clone(),
        access_token_expire_time: credentials.access_token_expire_time,
        credentials_file: app.config.credentials.path().display().to_string(),
        user: user.into(),
        registered,
    })
}

/// Ends the saved session at the auth-service that issued it, whatever
/// `--auth-url` or `NINAIVALAIGAL_AUTH_URL` say (the refresh token goes
/// nowhere else), then deletes the saved credentials.
///
/// When that auth-service cannot be reached or fails, the credentials are
/// kept and the command fails: deleting them would leave a session that is
/// still valid (for anyone who copied the token) with no way left to end it
/// from here, while `Logged out` suggested otherwise. Running `eM logout`
/// again later ends it; `local_only` (`--local`) deletes the credentials
/// without trying, for an auth-service that is gone for good.
pub async fn logout(app: &App, local_only: bool) -> Result<LogoutView, Failure> {
    let file = &app.config.credentials;
    // A refresh by another process meanwhile would spend the refresh token
    // this sends.
    let _lock = file.lock().await?;
    let saved = file.load().ok().flatten();
    let revoked = match (&saved, &app.config.env_token) {
        (_, _) if local_only => false,
        (Some(saved), _) => end_saved_session(app, saved).await?,
        // The user's own token, sent where the user points.
        (None, Some(token)) => {
            let request = Bearer::new(token)?.request(LogoutRequest::default());
            match app.auth_client().logout(request).await {
                Ok(_) => true,
                Err(status) if already_ended(&status) => false,
                Err(status) => return Err(Failure::from_status(&status, &app.auth_server())),
            }
        }
        (None, None) => false,
    };
    let credentials_removed = file.remove()?;
    Ok(LogoutView {
        email: saved.map(|saved| saved.email),
        revoked,
        credentials_removed,
        local_only,
    })
}

/// Ends `saved`'s session at its own auth-service; `Ok(false)` if it had
/// ended already.
async fn end_saved_session(app: &App, saved: &Credentials) -> Result<bool, Failure> {
    if saved.refresh_token_expire_time <= Utc::now() {
        return Ok(false);
    }
    let issuer = Server::Auth(saved.auth_url.clone());
    let mut client = AuthServiceClient::new(channel(&saved.auth_url, &app.config)?);
    let request = LogoutRequest {
        refresh_token: saved.refresh_token.clone(),
    };
    match client.logout(request).await {
        Ok(_) => Ok(true),
        Err(status) if already_ended(&status) => Ok(false),
        Err(status) => {
            let failure = Failure::from_status(&status, &issuer);
            Err(Failure::new(
                failure.kind,
                format!(
                    "could not end the session, so the saved login is kept: {}",
                    failure.message
                ),
            )
            .hint(format!(
                "run `eM logout` again once the auth-service at {} answers; `eM logout --local` deletes the saved login without ending the session, which then stays valid until {}",
                saved.auth_url,
                saved.refresh_token_expire_time.format("%Y-%m-%d %H:%M:%SZ")
            )))
        }
    }
}

/// The auth-service's answer for a session that is revoked or expired
/// already: nothing is left to end.
fn already_ended(status: &Status) -> bool {
    // A status with a source was made on this side from a failed connection.
    std::error::Error::source(status).is_none()
        && matches!(
            status.code(),
            Code::Unauthenticated | Code::NotFound | Code::PermissionDenied
        )
}

/// Who the current token belongs to.
pub async fn whoami(app: &App) -> Result<WhoAmIView, Failure> {
    let response = app
        .auth(|mut client, bearer| async move {
            client.who_am_i(bearer.request(WhoAmIRequest {})).await
        })
        .await?;
    let user = response
        .user
        .ok_or_else(|| Failure::new(Kind::Other, "the auth-service answered without a user"))?;
    Ok(WhoAmIView {
        user: user.into(),
        session_id: response.session_id,
        access_token_expire_time: time(response.access_token_expire_time),
        token_source: if app.config.env_token.is_some() {
            "environment"
        } else {
            "credentials_file"
        },
    })
}

/// Erases the caller's account with everything in it, after the password
/// is given again; then deletes the saved login, which is of no use any
/// more.
pub async fn delete(app: &App, password: String) -> Result<DeletedAccountView, Failure> {
    let request = DeleteAccountRequest { password };
    let response = app
        .auth(|mut client, bearer| {
            let request = bearer.request(request.clone());
            async move { client.delete_account(request).await }
        })
        .await?;
    let receipt = response
        .receipt
        .ok_or_else(|| Failure::new(Kind::Other, "the auth-service sent no receipt"))?;
    let credentials_removed = if app.config.env_token.is_none() {
        let file = &app.config.credentials;
        let _lock = file.lock().await?;
        file.remove()?
    } else {
        false
    };
    Ok(DeletedAccountView {
        user_id: receipt.user_id,
        contexts: receipt.contexts,
        memories: receipt.memories,
        sessions: receipt.sessions,
        refresh_tokens: receipt.refresh_tokens,
        audit_events_scrubbed: receipt.audit_events_scrubbed,
        erase_time: time(receipt.erase_time),
        credentials_removed,
    })
}

/// The email from `--email`, or asked for on a terminal.
pub fn email_or_prompt(given: Option<String>) -> Result<String, Failure> {
    let missing = || Failure::usage("no email given").hint("pass --email ADDRESS");
    match given.filter(|email| !email.trim().is_empty()) {
        Some(email) => Ok(email),
        None if io::stdin().is_terminal() => optional_prompt("Email: ")?.ok_or_else(missing),
        None => Err(missing()),
    }
}

/// A line typed at a terminal, `None` if empty or if stdin is not a terminal.
pub fn optional_prompt(prompt: &str) -> Result<Option<String>, Failure> {
    if !io::stdin().is_terminal() {
        return Ok(None);
    }
    eprint!("{prompt}");
    io::stderr().flush().ok();
    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|error| Failure::usage(format!("cannot read the answer: {error}")))?;
    Ok(Some(line.trim().to_owned()).filter(|line| !line.is_empty()))
}

/// The password: from the first line of stdin when asked to or when stdin is
/// not a terminal (scripts), otherwise from a prompt that does not echo.
/// Never from the command line, where other users could see it.
pub fn read_password(from_stdin: bool, confirm: bool) -> Result<String, Failure> {
    if from_stdin || !io::stdin().is_terminal() {
        let mut line = String::new();
        io::stdin().lock().read_line(&mut line).map_err(|error| {
            Failure::usage(format!("cannot read the password from stdin: {error}"))
        })?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            return Err(Failure::usage("no password on stdin").hint(
                "pipe the password in, e.g. `printf '%s\\n' \"$PASSWORD\" | eM login --email ...`",
            ));
        }
        return Ok(password);
    }
    let prompt_failure =
        |error: io::Error| Failure::usage(format!("cannot read the password: {error}"));
    let password = rpassword::prompt_password("Password: ").map_err(prompt_failure)?;
    if confirm {
        let again = rpassword::prompt_password("Repeat password: ").map_err(prompt_failure)?;
        if again != password {
            return Err(Failure::usage("the passwords do not match"));
        }
    }
    if password.is_empty() {
        return Err(Failure::usage("the password is empty"));
    }
    Ok(password)
}
