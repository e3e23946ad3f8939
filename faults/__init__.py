"""The fault catalogue: tool, model, stream, approval, crash and input faults.

Scenario files name a fault by its ``key``; ``registry()`` maps every key to its class and
``catalogue()`` lists them as rows. Add a fault by subclassing a surface base (``ToolFault``,
``ModelFault``, ``StreamFault``, ``ApprovalFault``, ``CrashFault``) with a new ``key``.

Errors::

    FaultDefinitionError (TypeError)      a fault class is declared wrongly (key, attributes)
    FaultNotApplicableError (ValueError)  a fault cannot act on the call it was aimed at
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faults.approval import (
    ApprovalAfterRestart,
    ApprovalChangedArgs,
    ApprovalConcurrentDuplicate,
    ApprovalDeny,
    ApprovalDuplicate,
    ApprovalLate,
    ApprovalNever,
)
from faults.base import (
    Category,
    Fault,
    FaultDefinitionError,
    FaultNotApplicableError,
    FaultOutcome,
    Schedule,
    Surface,
    registry,
)
from faults.catalogue import catalogue, faults_main
from faults.crash import (
    CrashAfterCheckpoint,
    CrashAfterEffect,
    CrashBeforeStep,
    CrashTerminalWrite,
    CrashWhileParked,
)
from faults.model import (
    ModelArgsNotJson,
    ModelArgsNotObject,
    ModelContentFilter,
    ModelEmpty,
    ModelExtraArgument,
    ModelLengthValidJson,
    ModelMissingArgument,
    ModelNoToolUse,
    ModelOverloaded,
    ModelProgressLoop,
    ModelQuotaExhausted,
    ModelRateLimit,
    ModelRefusal,
    ModelRepeatCall,
    ModelServerError,
    ModelToolCallWithoutId,
    ModelTruncated,
    ModelUnknownTool,
    ModelWrongArgumentType,
)
from faults.stream import (
    StreamCutMidEvent,
    StreamErrorEvent,
    StreamNoTerminator,
    StreamPartialToolJson,
    StreamTrickle,
)
from faults.surfaces import (
    AgentCrash,
    ApprovalFault,
    CrashFault,
    CrashMode,
    CrashPoint,
    FaultFiring,
    HttpRequest,
    HttpResponse,
    ModelAnswer,
    ModelCallContext,
    ModelFault,
    ProviderError,
    ReviewAction,
    ReviewContext,
    StreamCallContext,
    StreamFault,
    StreamPlan,
    ToolCallContext,
    ToolCallSpec,
    ToolFault,
    TransportError,
    TransportFailure,
)
from faults.tool import (
    ToolConnectionReset,
    ToolConnectTimeout,
    ToolDuplicateDelivery,
    ToolEmptyBody,
    ToolHttp400,
    ToolHttp401,
    ToolHttp403,
    ToolHttp404,
    ToolHttp409,
    ToolHttp422,
    ToolHttp500,
    ToolHttp502,
    ToolHttp503,
    ToolHttp504,
    ToolInvalidJson,
    ToolLatency,
    ToolOversizeBody,
    ToolQuotaExhausted,
    ToolRateLimit,
    ToolRateLimitHttpDate,
    ToolReadTimeout,
    ToolSchemaMissingField,
    ToolSchemaRenamedField,
    ToolSchemaWrongType,
    ToolTimeoutAfterCommit,
    ToolTruncatedBody,
    ToolWrongContentType,
)

if TYPE_CHECKING:
    from faults.inputs import INPUT_STRATEGIES, edge_case_inputs

_LAZY = frozenset({"INPUT_STRATEGIES", "edge_case_inputs"})


def __getattr__(name: str) -> Any:
    # The input strategies are Hypothesis strategies, and importing Hypothesis costs more than
    # the rest of the harness: every pytest process (each xdist worker too) would pay it, though
    # only a scenario with an input matrix draws from them.
    if name in _LAZY:
        from faults import inputs

        return getattr(inputs, name)
    raise AttributeError(f"module 'faults' has no attribute {name!r}")


__all__ = [
    "INPUT_STRATEGIES",
    "AgentCrash",
    "ApprovalAfterRestart",
    "ApprovalChangedArgs",
    "ApprovalConcurrentDuplicate",
    "ApprovalDeny",
    "ApprovalDuplicate",
    "ApprovalFault",
    "ApprovalLate",
    "ApprovalNever",
    "Category",
    "CrashAfterCheckpoint",
    "CrashAfterEffect",
    "CrashBeforeStep",
    "CrashFault",
    "CrashMode",
    "CrashPoint",
    "CrashTerminalWrite",
    "CrashWhileParked",
    "Fault",
    "FaultDefinitionError",
    "FaultFiring",
    "FaultNotApplicableError",
    "FaultOutcome",
    "HttpRequest",
    "HttpResponse",
    "ModelAnswer",
    "ModelArgsNotJson",
    "ModelArgsNotObject",
    "ModelCallContext",
    "ModelContentFilter",
    "ModelEmpty",
    "ModelExtraArgument",
    "ModelFault",
    "ModelLengthValidJson",
    "ModelMissingArgument",
    "ModelNoToolUse",
    "ModelOverloaded",
    "ModelProgressLoop",
    "ModelQuotaExhausted",
    "ModelRateLimit",
    "ModelRefusal",
    "ModelRepeatCall",
    "ModelServerError",
    "ModelToolCallWithoutId",
    "ModelTruncated",
    "ModelUnknownTool",
    "ModelWrongArgumentType",
    "ProviderError",
    "ReviewAction",
    "ReviewContext",
    "Schedule",
    "StreamCallContext",
    "StreamCutMidEvent",
    "StreamErrorEvent",
    "StreamFault",
    "StreamNoTerminator",
    "StreamPartialToolJson",
    "StreamPlan",
    "StreamTrickle",
    "Surface",
    "ToolCallContext",
    "ToolCallSpec",
    "ToolConnectTimeout",
    "ToolConnectionReset",
    "ToolDuplicateDelivery",
    "ToolEmptyBody",
    "ToolFault",
    "ToolHttp400",
    "ToolHttp401",
    "ToolHttp403",
    "ToolHttp404",
    "ToolHttp409",
    "ToolHttp422",
    "ToolHttp500",
    "ToolHttp502",
    "ToolHttp503",
    "ToolHttp504",
    "ToolInvalidJson",
    "ToolLatency",
    "ToolOversizeBody",
    "ToolQuotaExhausted",
    "ToolRateLimit",
    "ToolRateLimitHttpDate",
    "ToolReadTimeout",
    "ToolSchemaMissingField",
    "ToolSchemaRenamedField",
    "ToolSchemaWrongType",
    "ToolTimeoutAfterCommit",
    "ToolTruncatedBody",
    "ToolWrongContentType",
    "TransportError",
    "TransportFailure",
    "catalogue",
    "edge_case_inputs",
    "faults_main",
    "registry",
]
