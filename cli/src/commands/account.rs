//! register, login, logout, whoami.

use std::io::{self, BufRead, IsTerminal, Write};

use chrono::Utc;
use ninaivalaigal::auth_v1::{LoginRequest, LogoutRequest, RegisterRequest, WhoAmIRequest};
use tonic::Code;

use crate::{
    client::{App, Bearer},
    exit::{Failure, Kind},
    output::{LoginView, LogoutView, WhoAmIView, time},
    session::credentials_for,
};

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
    // expires; end it (best effort: it may be expired or revoked already).
    if let Some(previous) = previous.filter(|previous| previous.auth_url == app.config.auth_url) {
        let request = LogoutRequest {
            refresh_token: previous.refresh_token,
        };
        let _ = app.auth_client().logout(request).await;
    }
    Ok(LoginView {
        session_id: credentials.session_id.clone(),
        access_token_expire_time: credentials.access_token_expire_time,
        credentials_file: app.config.credentials.path().display().to_string(),
        user: user.into(),
        registered,
    })
}

/// Revokes the session and deletes the saved credentials. The local file
/// goes even when the auth-service cannot be reached, and the failure to
/// revoke is then reported.
pub async fn logout(app: &App) -> Result<LogoutView, Failure> {
    let file = &app.config.credentials;
    let saved = file.load().ok().flatten();
    let revocation = match (&saved, &app.config.env_token) {
        (Some(saved), _) => {
            let request = LogoutRequest {
                refresh_token: saved.refresh_token.clone(),
            };
            Some(app.auth_client().logout(request).await)
        }
        (None, Some(token)) => {
            let request = Bearer::new(token)?.request(LogoutRequest::default());
            Some(app.auth_client().logout(request).await)
        }
        (None, None) => None,
    };
    let credentials_removed = file.remove()?;
    let revoked = match revocation {
        None => false,
        Some(Ok(_)) => true,
        // Already revoked or expired: nothing left to end.
        Some(Err(status))
            if matches!(
                status.code(),
                Code::Unauthenticated | Code::NotFound | Code::PermissionDenied
            ) =>
        {
            false
        }
        Some(Err(status)) => {
            let failure = Failure::from_status(&status, &app.auth_server());
            return Err(Failure {
                message: format!(
                    "removed the saved login, but could not revoke the session: {}",
                    failure.message
                ),
                ..failure
            });
        }
    };
    Ok(LogoutView {
        email: saved.map(|saved| saved.email),
        revoked,
        credentials_removed,
    })
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
