"""Why a portrait is refused: stable, human ``failure_reason`` strings, and the error."""

from __future__ import annotations

MIN_FACE_PIXELS = 80  # the detector's face box must be at least this wide
SIMILAR_SIZE = 0.6  # a second face at least this share of the largest's width counts
MAX_YAW, MAX_PITCH = 30.0, 25.0  # degrees
MIN_EYE_ASPECT = 0.15  # mean eye aspect ratio below this: eyes closed
MAX_LIP_GAP = 0.15  # inner-lip gap over face height above this: mouth wide open

UNDECODABLE = "The source image could not be decoded."
NO_FACE = "No face detected in source image."
SEVERAL_FACES = ("Two or more faces of similar size were detected in the source image; "
                 "exactly one is needed.")
TOO_SMALL = (f"The face in the source image is too small: at least {MIN_FACE_PIXELS} pixels "
             "across is needed.")
TURNED = (f"The face is turned too far from the camera: at most {MAX_YAW:.0f}° to the side "
          f"and {MAX_PITCH:.0f}° up or down is accepted.")
EYES_CLOSED = "The eyes in the source image are closed; a portrait with open eyes is needed."
MOUTH_OPEN = ("The mouth in the source image is wide open; a portrait with the mouth closed "
              "or slightly open is needed.")

REASONS = (UNDECODABLE, NO_FACE, SEVERAL_FACES, TOO_SMALL, TURNED, EYES_CLOSED, MOUTH_OPEN)


class FaceError(Exception):
    """The portrait cannot be used; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
