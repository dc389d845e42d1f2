"""``/api/v1/deliveries``: the outbox rows to the caller's channels (an admin: everyone's); retry a dead one."""

from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from alerts.delivery import outbox
from alerts.server import deliveryquery
from alerts.server.accounts import Principal
from alerts.server.alertquery import delivery_view
from alerts.server.auth import current_user, not_found, require_visible
from alerts.server.pagination import Page, PageParams, page_of, page_params
from alerts.server.routes.alerts import DeliveryOut, id_after

router = APIRouter(tags=["deliveries"])

MAX_ID = 2**63 - 1


@router.get("/deliveries", response_model=Page[DeliveryOut], summary="Deliveries to your channels, newest first")
def list_deliveries(
    request: Request,
    state: Optional[Literal["pending", "sent", "dead", "suppressed"]] = None,
    user: Optional[str] = Query(None, min_length=1, max_length=64, description="admins: whose deliveries"),
    alert_uid: Optional[str] = Query(None, min_length=1, max_length=64, description="the alert's uid"),
    destination: Optional[str] = Query(None, min_length=1, max_length=512, description="a channel's key (user/name)"),
    channel: Optional[str] = Query(None, min_length=1, max_length=512,
                                   description="a channel's key (user/name): every address of an email channel"),
    run_id: Optional[str] = Query(None, min_length=1, max_length=256, description="the deliveries of this run's alerts"),
    page: PageParams = Depends(page_params),
    caller: Principal = Depends(current_user),
) -> Page[DeliveryOut]:
    rows = deliveryquery.list_deliveries(request.app.state.store, caller, state=state, user=user, alert_uid=alert_uid,
                                         destination=destination, limit=page.limit, after=id_after(page),
                                         channel=channel, run_id=run_id)
    items, cursor = page_of(rows, page.limit, lambda row: row["id"])
    return Page[DeliveryOut](items=[DeliveryOut(**row) for row in items], next_cursor=cursor)


def _visible_delivery(request: Request, caller: Principal, delivery_id: int):
    record = deliveryquery.get_delivery(request.app.state.store, delivery_id) if 0 < delivery_id <= MAX_ID else None
    require_visible(caller, record.user if record else None, "delivery", delivery_id)
    return record


@router.get("/deliveries/{delivery_id}", response_model=DeliveryOut, summary="One delivery to your channels")
def get_delivery(request: Request, delivery_id: int, caller: Principal = Depends(current_user)) -> DeliveryOut:
    return DeliveryOut(**delivery_view(_visible_delivery(request, caller, delivery_id)))


@router.post("/deliveries/{delivery_id}/retry", response_model=DeliveryOut,
             summary="Queue a dead delivery again (sent by the server's relay when it falls due: at once)")
def retry_delivery(request: Request, delivery_id: int, caller: Principal = Depends(current_user)) -> DeliveryOut:
    record = _visible_delivery(request, caller, delivery_id)
    store = request.app.state.store
    if record.state != "dead" or not outbox.requeue(store, delivery_id, request.app.state.clock()):
        current = deliveryquery.get_delivery(store, delivery_id)
        if current is None:
            raise not_found("delivery", delivery_id)
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"delivery {delivery_id} is {current.state}: only a dead delivery is retried")
    request.app.state.wake_relay()
    return DeliveryOut(**delivery_view(deliveryquery.get_delivery(store, delivery_id)))
