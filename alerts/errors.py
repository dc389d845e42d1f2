"""The exceptions alerts raises into user code.

::

    Exception
    └── Error                 anything alerts raises on purpose (wandb.Error's twin)
        ├── UsageError        the API was called out of order: log() before init(), alert() after finish()
        │   └── RunInUseError init(id=X, resume=...) while another live process is writing run X
        ├── InvalidArgument   an init() argument the store cannot keep (also a ValueError): a bad run id
        ├── StoreUnavailable  init() could not reach the store, or lock it to create or claim run X
        ├── ConfigError       config.update() or config[k] = v changed a value without allow_val_change
        ├── CommError         wandb's name for a failed call to its server (never raised here; defined
        │                     so that `except wandb.CommError` runs)
        └── AuthenticationError  the server refused the API key (login(), or init() in remote mode)

    UserWarning
    └── AlertsWarning         a value that could not be stored, a step that went backwards: the call
                              went on without it

Delivery failures never reach user code: they are recorded on the alert and retried.
"""


class Error(Exception):
    """Base class of the errors alerts raises on purpose."""


class UsageError(Error):
    """The API was used out of order (before ``init()`` or after ``finish()``)."""


class RunInUseError(UsageError):
    """``init(id=..., resume=...)`` of a run that another live process is writing: one writer per run."""


class InvalidArgument(Error, ValueError):
    """An ``init()`` argument that breaks a rule of the store (a run id with a ``/``, a name with NUL)."""


class StoreUnavailable(Error):
    """``init()`` could not read or write the store it needs to start a run (an explicit run id is
    created or claimed at once): the database was locked past its busy timeout, or unreachable.
    Nothing was started."""


class AuthenticationError(Error):
    """The server answered 401/403 to the API key: ``login()`` or ``init()`` in remote mode. (Once a
    run is started, a refused key never raises: its data is kept on disk for ``alerts sync``.)"""


class AlertsWarning(UserWarning):
    """Something passed to alerts was skipped; the rest of the call went on."""


class ConfigError(Error):
    """A config value was changed without ``allow_val_change=True`` (wandb's rule: a config records
    what a run was started with; a value that changes during training belongs in ``log()``)."""


class CommError(Error):
    """wandb's error for a failed call to its server. Nothing here talks to a server, so it is never
    raised; it exists so that scripts which catch it run unchanged."""
