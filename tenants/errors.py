"""KooGallery result codes (spec §4) and the one exception sync handling raises."""


class ResultCode:
    SUCCESS = "000000"
    AUTH_FAILED = "000001"
    INVALID_PARAMETER = "000002"
    INSTANCE_NOT_FOUND = "000003"
    PROCESSING = "000004"
    INTERNAL_ERROR = "000005"
    # Huawei's sample answers applicationSync with 000101 when clientSecret cannot be decrypted.
    CLIENT_SECRET_UNUSABLE = "000101"


class SyncError(Exception):
    """A refusal in KooGallery's vocabulary: `code` goes to resultCode, `message` to resultMsg."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> SyncError:
    return SyncError(ResultCode.INVALID_PARAMETER, message)


def auth_failed(message: str) -> SyncError:
    return SyncError(ResultCode.AUTH_FAILED, message)
